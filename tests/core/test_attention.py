"""Attention: the SDPA path equals the plain softmax formula; rotary is relative; KV-cache steps."""

import pytest
import torch

from seqverse.core.backbones import build
from seqverse.core.backbones.attention import Attention, apply_rotary, attention_ref, repeat_kv, rotary_angles


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (4, 1)], ids=["mha", "gqa", "mqa"])
def test_sdpa_equals_reference(causal, heads):
    torch.manual_seed(0)
    n_heads, n_kv = heads
    attn = Attention(32, n_heads=n_heads, n_kv_heads=n_kv, causal=causal).double()
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    q, k, v = attn.project(x, torch.arange(13))
    fast = attn.attend(q, k, v, causal)
    n_rep = n_heads // n_kv
    ref = attention_ref(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), causal)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


def test_gqa_has_fewer_kv_parameters():
    mha = Attention(64, n_heads=8)
    gqa = Attention(64, n_heads=8, n_kv_heads=2)
    assert gqa.k_proj.weight.shape == (16, 64) and mha.k_proj.weight.shape == (64, 64)


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    k = torch.randn(1, 1, 1, 8, dtype=torch.float64)

    def score(pq, pk):
        cq, sq = rotary_angles(torch.tensor([pq]), 8)
        ck, sk = rotary_angles(torch.tensor([pk]), 8)
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    torch.testing.assert_close(score(5, 2), score(103, 100))
    assert not torch.allclose(score(5, 2), score(5, 3))


def test_invalid_head_counts_are_named():
    with pytest.raises(ValueError, match="n_heads"):
        Attention(30, n_heads=4)
    with pytest.raises(ValueError, match="n_kv_heads"):
        Attention(32, n_heads=4, n_kv_heads=3)


def test_bidirectional_attention_sees_the_future():
    torch.manual_seed(0)
    model = build("attention", d_model=16, n_layers=1, bidirectional=True)
    x = torch.randn(1, 6, 16, requires_grad=True)
    (model(x)[0, 0] * torch.randn(16)).sum().backward()  # a plain sum of a LayerNorm output is constant
    assert x.grad[0, 5].abs().sum() > 0
    with pytest.raises(RuntimeError, match="step"):
        model.init_state(1)
