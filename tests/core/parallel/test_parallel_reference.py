"""Single-process checks of seqverse.core.parallel: the references, kernels, layouts, checkpointing.

The ``simulate`` references run each distributed algorithm for P ranks inside one process with
the plain softmax formula; they must equal attention on the full tensors (float64).
"""

from __future__ import annotations

import pytest
import torch
from sp_workers import sdpa

from seqverse.core import parallel
from seqverse.core.backbones import build
from seqverse.core.parallel import blocks, lasp2, layout, lightseq, ring, ulysses


def qkv(length=24, heads=8, kv_heads=2, dim=8, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, length, heads, dim, generator=gen, dtype=dtype)
    k, v = (torch.randn(2, length, kv_heads, dim, generator=gen, dtype=dtype) for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_simulated_algorithms_equal_attention(causal, size):
    q, k, v = qkv()
    ref = sdpa(q, k, v, causal)
    torch.testing.assert_close(ring.simulate(q, k, v, causal, size), ref, rtol=0, atol=1e-12)
    if 24 % (2 * size) == 0:
        torch.testing.assert_close(lightseq.simulate(q, k, v, causal, size), ref, rtol=0, atol=1e-12)
    if 8 % size == 0:
        torch.testing.assert_close(ulysses.simulate(q, k, v, causal, size), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_block_kernels_equal_formula(causal):
    q, k, v = (x.transpose(1, 2) for x in qkv(length=12))
    out, lse = blocks.attention_block(q, k, v, causal)
    ref_out, ref_lse = blocks.attention_block_ref(q, k, v, causal)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, ref_lse, rtol=0, atol=1e-12)
    dout = torch.randn_like(out)
    fast = blocks.attention_block_backward(dout, q, k, v, out, lse, causal)
    rep = q.shape[1] // k.shape[1]
    ref = blocks.attention_block_backward_ref(
        dout, q, blocks.repeat_kv(k, rep), blocks.repeat_kv(v, rep), out, lse, causal
    )
    ref = (ref[0], blocks.sum_kv(ref[1], k.shape[1]), blocks.sum_kv(ref[2], k.shape[1]))
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_merge_of_two_key_halves_is_exact():
    q, k, v = (x.transpose(1, 2) for x in qkv(length=16))
    out, lse = blocks.empty_result(q)
    for half in (slice(0, 8), slice(8, 16)):
        out, lse = blocks.merge(out, lse, *blocks.attention_block_ref(q, k[:, :, half], v[:, :, half], False))
    ref_out, ref_lse = blocks.attention_block_ref(q, k, v, False)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, ref_lse, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["ring", "lightseq", "ulysses"])
def test_single_device_path_equals_sdpa_with_gradients(method):
    q, k, v = (x.float().requires_grad_() for x in qkv(dtype=torch.float32))
    out = parallel.attention(q, k, v, method, causal=True)
    ref = sdpa(q, k, v, True)
    dout = torch.randn_like(out)
    grads, ref_grads = (torch.autograd.grad(y, (q, k, v), dout) for y in (out, ref))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["ring", "lightseq", "ulysses", "lasp2"])
@pytest.mark.parametrize("size", [2, 4])
def test_shard_unshard_round_trip(method, size):
    x = torch.arange(2 * 8 * size * 3).view(2, 8 * size, 3)
    parts = [layout.shard_for_rank(x, method, r, size) for r in range(size)]
    assert torch.equal(layout.unshard_parts(parts, method), x)
    assert sorted(torch.cat(parts, 1)[0, :, 0].tolist()) == x[0, :, 0].tolist()  # a partition


def test_zigzag_layout_pairs_early_and_late_chunks():
    x = torch.arange(16)[None]  # P = 2 -> 4 chunks of 4
    assert layout.shard_for_rank(x, "lightseq", 0, 2).tolist() == [[0, 1, 2, 3, 12, 13, 14, 15]]
    assert layout.shard_for_rank(x, "lightseq", 1, 2).tolist() == [[4, 5, 6, 7, 8, 9, 10, 11]]
    with pytest.raises(ValueError, match="divide into 4 equal chunks"):
        layout.shard_for_rank(torch.zeros(1, 6), "lightseq", 0, 2)


def test_linear_attention_reference_equals_loop():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 7, 2, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    decay = torch.tensor([0.8, 1.0], dtype=torch.float64)
    out = lasp2.linear_attention_ref(q, k, v, True, decay)
    for t in range(7):
        expect = sum(
            (decay ** (t - s))[:, None] * (q[0, t] * k[0, s]).sum(-1, keepdim=True) * v[0, s]
            for s in range(t + 1)
        )
        torch.testing.assert_close(out[0, t], expect, rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal,decay", [(True, None), (False, None), (True, (0.9, 0.5, 1.0))])
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lasp2_simulation_equals_reference(causal, decay, size):
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 5 * size, 3, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    decay = None if decay is None else torch.tensor(decay, dtype=torch.float64)
    ref = lasp2.linear_attention_ref(q, k, v, causal, decay)
    torch.testing.assert_close(lasp2.simulate(q, k, v, causal, size, decay), ref, rtol=0, atol=1e-12)


def test_linear_attention_single_device_gradients():
    gen = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(2, 9, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )
    decay = torch.tensor([0.9, 0.5, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *x: parallel.linear_attention(*x, decay=decay), (q, k, v))
    assert torch.autograd.gradcheck(lambda *x: parallel.linear_attention(*x, causal=False), (q, k, v))


def test_remat_checkpoint_recomputes_all_but_attention():
    torch.manual_seed(0)
    model = parallel.parallelize(build("attention", 32, 2, n_heads=4, n_kv_heads=2), "ring")
    x = torch.randn(2, 16, 32)
    model(x).square().sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    parallel.checkpoint_blocks(model)
    mlp_calls = []
    for layer in model.layers:
        # a pre-hook: recomputation stops right after the last saved tensor, before post-hooks run
        layer.block.mlp.register_forward_pre_hook(lambda *_: mlp_calls.append(1))
    before = parallel.attention_forwards()
    model(x).square().sum().backward()
    assert parallel.attention_forwards() - before == 2  # one per layer
    assert len(mlp_calls) == 4  # the rest of each block did run twice (forward + recomputation)
    for a, b in zip(plain, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_parallelize_keeps_parameter_names_and_values():
    torch.manual_seed(0)
    model = build("attention", 32, 2, n_heads=4, n_kv_heads=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 16, 32)
    expect = model(x)
    parallel.parallelize(model, "lightseq")
    assert {k: v for k, v in model.state_dict().items()}.keys() == before.keys()
    torch.testing.assert_close(model(x), expect, rtol=0, atol=1e-5)  # P = 1: same function


def test_bad_inputs_are_named():
    q, k, v = qkv(dtype=torch.float32)
    with pytest.raises(ValueError, match="unknown attention method"):
        parallel.attention(q, k, v, "megatron")
    with pytest.raises(ValueError, match="kv heads must divide"):
        parallel.attention(q, k[:, :, :1].expand(-1, -1, 3, -1), v[:, :, :1].expand(-1, -1, 3, -1), "ring")
    with pytest.raises(ValueError, match="decay needs causal"):
        parallel.linear_attention(q, q, q, causal=False, decay=torch.ones(8))
    with pytest.raises(ValueError, match="do not divide over 3"):
        ulysses.kv_repeats(8, 2, 3)
