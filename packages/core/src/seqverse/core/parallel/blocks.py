"""Partial attention on one block of keys, and the online-softmax merge of partial results.

A distributed method sees only part of the keys at a time. For a query block and a key block it
computes the block's output ``O_b = softmax(Q K_b^T / sqrt(d)) V_b`` and log-sum-exp
``lse_b = log sum_j exp(q . k_j / sqrt(d))``; two partial results merge exactly (Milakov &
Gimelshein 2018, "Online normalizer calculation for softmax"; FlashAttention, Dao et al. 2022):

    lse = logaddexp(lse_a, lse_b),   O = exp(lse_a - lse) O_a + exp(lse_b - lse) O_b.

The backward of a block needs only the *final* ``O`` and ``lse`` (FlashAttention-2, Sec. 3.1.2):
``dS = P * (dP - rowsum(dO * O))`` with ``P = exp(S - lse)``, so each block's ``dq, dk, dv`` are
exact partial sums of the full gradients.

Layout here is the kernels' ``[B, H, L, Dh]``; keys/values may have fewer heads (GQA/MQA) and are
repeated to the query heads inside (their gradients summed back). Kernels: PyTorch's CPU flash
kernel and the CUDA memory-efficient kernel, both of which return the log-sum-exp; the plain
formula, :func:`attention_block_ref`, serves every other device and the tests.
"""

from __future__ import annotations

import math

import torch

aten = torch.ops.aten


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``[B, Hkv, L, Dh] -> [B, Hkv * n_rep, L, Dh]`` (query head h reads key/value head h // n_rep)."""
    if n_rep == 1:
        return x
    b, h, l, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, l, d).reshape(b, h * n_rep, l, d)


def sum_kv(dx: torch.Tensor, n_kv: int) -> torch.Tensor:
    """Adjoint of :func:`repeat_kv`: sum the gradients of the query heads that share a kv head."""
    b, h, l, d = dx.shape
    return dx if h == n_kv else dx.view(b, n_kv, h // n_kv, l, d).sum(2)


def attention_block_ref(q, k, v, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The math: ``(softmax(Q K^T / sqrt(d) + mask) V, logsumexp)``; causal means a square block
    on the diagonal (query i sees keys j <= i)."""
    k, v = repeat_kv(k, q.shape[1] // k.shape[1]), repeat_kv(v, q.shape[1] // v.shape[1])
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q @ k.transpose(-1, -2)).to(acc) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    lse = scores.logsumexp(-1)
    return (torch.exp(scores - lse[..., None]).to(v.dtype) @ v), lse


def attention_block(q, k, v, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(O_b [B, H, Lq, Dh], lse_b [B, H, Lq])`` with a fused kernel where there is one."""
    n_kv = k.shape[1]
    k, v = repeat_kv(k, q.shape[1] // n_kv), repeat_kv(v, q.shape[1] // n_kv)
    if q.device.type == "cpu":
        return aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal)
    if q.device.type == "cuda" and q.dtype != torch.float64:
        out, lse, _, _ = aten._scaled_dot_product_efficient_attention(q, k, v, None, True, 0.0, causal)
        return out, lse[..., : q.shape[2]]  # the CUDA kernel pads lse to a multiple of 32
    return attention_block_ref(q, k, v, causal)


def attention_block_backward(dout, q, k, v, out, lse, causal: bool) -> tuple[torch.Tensor, ...]:
    """``(dq, dk, dv)`` of one block, given the *final* (merged) ``out`` and ``lse``."""
    n_kv = k.shape[1]
    k, v = repeat_kv(k, q.shape[1] // n_kv), repeat_kv(v, q.shape[1] // n_kv)
    out, dout = out.to(q.dtype), dout.to(q.dtype)
    if q.device.type == "cpu":
        dq, dk, dv = aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout, q, k, v, out, lse.to(q.dtype if q.dtype == torch.float64 else torch.float32), 0.0, causal
        )
    elif q.device.type == "cuda" and q.dtype != torch.float64:
        pad = -q.shape[2] % 32
        lse = torch.nn.functional.pad(lse.float(), (0, pad)).contiguous()
        seed = offset = torch.zeros((), dtype=torch.long, device=q.device)
        dq, dk, dv, _ = aten._scaled_dot_product_efficient_attention_backward(
            dout, q, k, v, None, out, lse, seed, offset, 0.0, [True, True, True, False], causal
        )
    else:
        dq, dk, dv = attention_block_backward_ref(dout, q, k, v, out, lse, causal)
    return dq, sum_kv(dk, n_kv), sum_kv(dv, n_kv)


def attention_block_backward_ref(dout, q, k, v, out, lse, causal: bool) -> tuple[torch.Tensor, ...]:
    """FlashAttention-2's backward for one block from the final ``out`` and ``lse`` (plain formula)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-1, -2)).to(torch.promote_types(q.dtype, torch.float32)) * scale
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    p = torch.exp(scores - lse[..., None].to(scores.dtype)).to(q.dtype)
    dv = p.transpose(-1, -2) @ dout
    dp = dout @ v.transpose(-1, -2)
    ds = p * (dp - (dout * out).sum(-1, keepdim=True)) * scale
    return ds @ k, ds.transpose(-1, -2) @ q, dv


def merge(out, lse, block_out, block_lse) -> tuple[torch.Tensor, torch.Tensor]:
    """Online-softmax merge of a block's partial result into the running ``(out, lse)``.

    The running pair lives in float32 (float64 for float64 inputs) and starts as ``(0, -inf)``
    (see :func:`empty_result`).
    """
    new_lse = torch.logaddexp(lse, block_lse.to(lse.dtype))
    out = torch.exp(lse - new_lse)[..., None] * out + torch.exp(block_lse - new_lse)[..., None] * block_out
    return out, new_lse


def empty_result(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The running ``(out, lse)`` before any block: zeros and ``-inf``, in the accumulation dtype."""
    acc = torch.promote_types(q.dtype, torch.float32)
    out = torch.zeros(q.shape, dtype=acc, device=q.device)
    return out, torch.full(q.shape[:-1], float("-inf"), dtype=acc, device=q.device)


def pairs(n_q: int, n_k: int, causal: bool) -> int:
    """Query x key pairs a block scores (the diagonal causal block scores its lower triangle)."""
    return n_q * (n_q + 1) // 2 if causal else n_q * n_k
