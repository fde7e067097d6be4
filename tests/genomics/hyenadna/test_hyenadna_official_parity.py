"""Numeric parity with the official HyenaDNA forward on the tiny-1k configuration (issue 21).

``official_forward`` is an independent, test-side transcription of the math of the official
Hugging Face port (``modeling_hyena.py`` of LongSafari/hyenadna-*-hf): it reads a plain state dict
under the official parameter names and follows that file step by step (``HyenaLMBackbone`` ->
``HyenaBlock`` -> ``HyenaOperator``/``HyenaFilter``/``HyenaPositionalEmbedding``/
``HyenaExponentialModulation``/``HyenaSin``/``fftconv`` -> ``ln_f`` -> ``lm_head``). It shares no
code with seqverse: float64 throughout, the short filter as the port's ``Conv1d(padding=2)`` then
the first L outputs, and the long convolution as a direct causal sum instead of an FFT.

The same weights, written as the port's ``save_pretrained`` writes them (tied ``lm_head`` and the
shared ``Sin.freq`` stored once, ``auto_map``/``architectures`` in config.json), load into
seqverse's ``HyenaDNAForCausalLM.from_pretrained``; the logits must agree to 1e-4.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from seqverse.genomics.hyenadna import HyenaDNAForCausalLM
from seqverse.genomics.hyenadna.use import uses_bos

# config.json of LongSafari/hyenadna-tiny-1k-seqlen-hf (model fields; "auto_map" as the hub has it)
TINY_1K = {
    "_name_or_path": "LongSafari/hyenadna-tiny-1k-seqlen-hf", "activation_freq": 10, "architectures": ["HyenaDNAForCausalLM"],
    "auto_map": {"AutoConfig": "configuration_hyena.HyenaConfig", "AutoModelForCausalLM": "modeling_hyena.HyenaDNAForCausalLM"},
    "d_inner": 512, "d_model": 128, "emb_dim": 5, "embed_dropout": 0.1, "filter_order": 64, "hyena_dropout": 0.0,
    "hyena_filter_dropout": 0.0, "hyena_order": 2, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
    "max_seq_len": 1026, "model_type": "hyenadna", "n_layer": 2, "num_inner_mlps": 2, "pad_vocab_size_multiple": 8,
    "short_filter_order": 3, "torch_dtype": "float32", "train_freq": True, "use_bias": True, "vocab_size": 12,
}
TOLERANCE = 1e-4
EMBED_SCALE = 0.1  # logits of a few units, as a trained model gives over four bases


def official_weights(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full state dict under the port's names. Buffers and the positional table start from the
    port's formulas and are then perturbed, so a loader that recomputed them instead of reading
    the checkpoint would fail; weights are scaled so the logits are O(1-10), not O(0.01)."""
    g = torch.Generator().manual_seed(seed)
    d, f, e, inner = cfg["d_model"], cfg["filter_order"], cfg["emb_dim"], cfg["d_inner"]
    L, order = cfg["max_seq_len"], cfg["hyena_order"]
    vocab = cfg["vocab_size"] + (-cfg["vocab_size"]) % cfg["pad_vocab_size_multiple"]

    def w(*shape, scale=None):
        scale = scale if scale is not None else 1 / math.sqrt(shape[-1])
        return torch.randn(*shape, generator=g) * scale

    sd = {"hyena.backbone.embeddings.word_embeddings.weight": w(vocab, d, scale=EMBED_SCALE)}
    # HyenaPositionalEmbedding: t = linspace(0, 1, L); bands = (emb_dim - 1) // 2 frequencies
    t = torch.linspace(0, 1, L)[None, :, None]
    bands = (e - 1) // 2
    w_pos = 2 * math.pi * torch.linspace(0, L - 1, L)[None, :, None] / L
    freqs = torch.linspace(1e-4, bands - 1, bands)[None, None]
    z = torch.cat([t, torch.cos(-freqs * w_pos), torch.sin(-freqs * w_pos)], dim=-1)
    # HyenaExponentialModulation(d_model): fast 0.3, slow 1.5, target 1e-2
    deltas = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, d)[None, None]
    for i in range(cfg["n_layer"]):
        p = f"hyena.backbone.layers.{i}."
        sd |= {
            p + "norm1.weight": 1 + w(d, scale=0.1), p + "norm1.bias": w(d, scale=0.1),
            p + "mixer.in_proj.weight": w((order + 1) * d, d), p + "mixer.in_proj.bias": w((order + 1) * d, scale=0.1),
            p + "mixer.short_filter.weight": w((order + 1) * d, 1, cfg["short_filter_order"], scale=0.5),
            p + "mixer.short_filter.bias": w((order + 1) * d, scale=0.1),
            p + "mixer.filter_fn.bias": w(d * (order - 1), scale=1.0),  # the port: nn.Parameter(torch.randn(...))
            p + "mixer.filter_fn.pos_emb.z": z + w(1, L, e, scale=0.01),
            p + "mixer.filter_fn.pos_emb.t": t.clone(),
            p + "mixer.filter_fn.implicit_filter.0.weight": w(f, e), p + "mixer.filter_fn.implicit_filter.0.bias": w(f, scale=0.1),
            # one HyenaSin module appears three times in implicit_filter: safetensors keeps its freq once
            p + "mixer.filter_fn.implicit_filter.1.freq": cfg["activation_freq"] * torch.ones(1, f) + w(1, f, scale=0.5),
            p + "mixer.filter_fn.implicit_filter.2.weight": w(f, f), p + "mixer.filter_fn.implicit_filter.2.bias": w(f, scale=0.1),
            p + "mixer.filter_fn.implicit_filter.4.weight": w(f, f), p + "mixer.filter_fn.implicit_filter.4.bias": w(f, scale=0.1),
            p + "mixer.filter_fn.implicit_filter.6.weight": w(d, f, scale=0.05),
            p + "mixer.filter_fn.modulation.deltas": deltas * (1 + w(1, 1, d, scale=0.05)),
            p + "mixer.out_proj.weight": w(d, d), p + "mixer.out_proj.bias": w(d, scale=0.1),
            p + "norm2.weight": 1 + w(d, scale=0.1), p + "norm2.bias": w(d, scale=0.1),
            p + "mlp.fc1.weight": w(inner, d), p + "mlp.fc1.bias": w(inner, scale=0.1),
            p + "mlp.fc2.weight": w(d, inner), p + "mlp.fc2.bias": w(d, scale=0.1),
        }
    sd |= {"hyena.backbone.ln_f.weight": 1 + w(d, scale=0.1), "hyena.backbone.ln_f.bias": w(d, scale=0.1)}
    return sd


def causal_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``y[..., c, t] = sum_{s<=t} k[c, s] u[..., c, t - s]``: what the port's ``fftconv`` computes
    (zero-padded to 2L, so no wrap-around), written as a direct sum."""
    B, D, L = u.shape
    return F.conv1d(F.pad(u, (L - 1, 0)), k.flip(-1)[:, None, :], groups=D)


def port_fftconv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The port's ``fftconv`` without the skip term: FFTs of size 2L, ``k_f`` divided by 2L,
    inverse with ``norm='forward'``, first L outputs."""
    L = u.shape[-1]
    k_f = torch.fft.rfft(k, n=2 * L) / (2 * L)
    u_f = torch.fft.rfft(u, n=2 * L)
    return torch.fft.irfft(u_f * k_f, n=2 * L, norm="forward")[..., :L]


def official_forward(sd: dict, cfg: dict, input_ids: torch.Tensor, dtype=torch.float64, conv=causal_conv) -> torch.Tensor:
    """Logits of the port's ``HyenaDNAForCausalLM.forward`` in eval mode (dropouts are identity).
    Default: float64 with the direct causal sum; ``dtype=torch.float32, conv=port_fftconv`` is the
    port exactly as it runs on a checkpoint."""
    sd = {k: v.to(dtype) for k, v in sd.items()}
    d, order = cfg["d_model"], cfg["hyena_order"]
    L = input_ids.shape[1]
    x = sd["hyena.backbone.embeddings.word_embeddings.weight"][input_ids]  # HyenaEmbeddings
    for i in range(cfg["n_layer"]):  # HyenaBlock: residual + mixer(norm1(residual)), then + mlp(norm2(.))
        p = f"hyena.backbone.layers.{i}."
        m = p + "mixer."
        h = F.layer_norm(x, (d,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-5)  # nn.LayerNorm(d_model)
        # HyenaOperator.forward
        l_filter = min(L, cfg["max_seq_len"])
        u = (h @ sd[m + "in_proj.weight"].T + sd[m + "in_proj.bias"]).transpose(1, 2)
        uc = F.conv1d(u, sd[m + "short_filter.weight"], sd[m + "short_filter.bias"], padding=2,
                      groups=u.shape[1])[..., :l_filter]
        *gates, v = uc.split(d, dim=1)
        # HyenaFilter.filter: implicit_filter(z) -> modulation(t, .)
        fp = m + "filter_fn."
        z, t = sd[fp + "pos_emb.z"][:, :l_filter], sd[fp + "pos_emb.t"][:, :l_filter]
        freq = sd[fp + "implicit_filter.1.freq"]  # HyenaSin: sin(freq * x), one module shared
        a = torch.sin(freq * (z @ sd[fp + "implicit_filter.0.weight"].T + sd[fp + "implicit_filter.0.bias"]))
        a = torch.sin(freq * (a @ sd[fp + "implicit_filter.2.weight"].T + sd[fp + "implicit_filter.2.bias"]))
        a = torch.sin(freq * (a @ sd[fp + "implicit_filter.4.weight"].T + sd[fp + "implicit_filter.4.bias"]))
        k = a @ sd[fp + "implicit_filter.6.weight"].T
        k = k * (torch.exp(-t * sd[fp + "modulation.deltas"].abs()) + 0.05)  # shift 0.05
        k = k[0].transpose(0, 1).reshape(order - 1, d, l_filter)
        bias = sd[fp + "bias"].reshape(order - 1, d)
        for o, x_i in enumerate(reversed(gates[1:])):
            v = v * x_i
            v = conv(v, k[o]) + v * bias[o][:, None]  # fftconv(u, k, D) = y + u * D
        y = (v * gates[0]).transpose(1, 2) @ sd[m + "out_proj.weight"].T + sd[m + "out_proj.bias"]
        x = x + y
        h = F.layer_norm(x, (d,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-5)
        h = F.gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"], approximate="tanh")
        x = x + h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
    x = F.layer_norm(x, (d,), sd["hyena.backbone.ln_f.weight"], sd["hyena.backbone.ln_f.bias"], eps=cfg["layer_norm_epsilon"])
    return x @ sd["hyena.backbone.embeddings.word_embeddings.weight"].T  # lm_head tied to the embedding


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("hyenadna-tiny-1k-seqlen-hf")
    sd = official_weights(TINY_1K)
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps(TINY_1K))
    return d, sd


@pytest.mark.slow
@pytest.mark.parametrize("length", [1024, 257])
def test_logits_match_the_official_forward(official_checkpoint, length):
    """float32 against the port's own float32 computation (FFT convolution), and float64 against
    the float64 direct-sum transcription (exact math; the model's final ``.float()`` limits it)."""
    directory, sd = official_checkpoint
    model = HyenaDNAForCausalLM.from_pretrained(directory).eval()
    ids = torch.randint(0, 12, (1, length), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        ours32 = model(ids).double()
        ours64 = model.double()(ids).double()
    port32 = official_forward(sd, TINY_1K, ids, torch.float32, port_fftconv).double()
    exact = official_forward(sd, TINY_1K, ids)
    diff32, diff64 = (ours32 - port32).abs().max().item(), (ours64 - exact).abs().max().item()
    port_vs_exact = (port32 - exact).abs().max().item()
    print(f"\ntiny-1k L={length}: max |logit diff| float32 vs the port in float32 {diff32:.2e}; float64 vs the "
          f"float64 transcription {diff64:.2e}; (the port's own float32 vs float64: {port_vs_exact:.2e}; "
          f"logits {exact.min():.2f}..{exact.max():.2f})")
    assert exact.abs().max() > 1.0 and exact.std() > 0.1  # a test that means something: logits far from zero
    assert diff32 <= TOLERANCE and diff64 <= TOLERANCE / 100


def test_official_reference_is_sensitive(official_checkpoint):
    """The comparison can fail: the same reference with one weight nudged, or without the short
    filter's causal cut, moves the logits far beyond the tolerance."""
    directory, sd = official_checkpoint
    ids = torch.randint(0, 12, (1, 64), generator=torch.Generator().manual_seed(1))
    base = official_forward(sd, TINY_1K, ids)
    nudged = dict(sd)
    key = "hyena.backbone.layers.1.mixer.filter_fn.implicit_filter.1.freq"
    nudged[key] = sd[key] * 1.01
    assert (official_forward(nudged, TINY_1K, ids) - base).abs().max() > 100 * TOLERANCE


def test_official_checkpoint_uses_no_bos(official_checkpoint):
    """An official config.json (no seqverse fields) selects the official convention: no [BOS]."""
    directory, _ = official_checkpoint
    model = HyenaDNAForCausalLM.from_pretrained(directory)
    assert model.config.bos_prefix is False and uses_bos(model) is False and uses_bos(model, True) is True
