"""Multi-head attention with rotary positions: MHA, MQA and GQA, causal or bidirectional.

Vaswani et al. 2017 (Sec. 3.2, scaled dot-product and multi-head attention); Shazeer 2019 (MQA:
one key/value head); Ainslie et al. 2023 (GQA: ``n_kv_heads`` groups); Su et al. 2021 (RoFormer
rotary position embedding, Sec. 3.4). Projection names follow LLaMA (``q_proj``, ``k_proj``,
``v_proj``, ``o_proj``). The kernel is PyTorch's ``scaled_dot_product_attention``; the plain
softmax formula sits beside it as :func:`attention_ref`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones.base import Mixer


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of the rotary angles ``pos * base^(-2i/d)`` for ``positions[L]`` -> each ``[L, head_dim]``."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64) / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x[B, H, L, Dh]`` pairwise (the "rotate half" layout of LLaMA/GPT-NeoX)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + mask) V for ``[B, H, L, Dh]`` tensors (K/V already repeated to H heads)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        lq, lk = q.shape[-2], k.shape[-2]
        mask = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(diagonal=lk - lq)
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``[B, Hkv, L, Dh] -> [B, Hkv * n_rep, L, Dh]``: each key/value head serves ``n_rep`` query heads."""
    if n_rep == 1:
        return x
    b, h, l, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, l, d).reshape(b, h * n_rep, l, d)


class Attention(Mixer):
    """Multi-head self-attention; ``n_kv_heads`` < ``n_heads`` gives GQA, ``n_kv_heads=1`` MQA.

    ``step`` keeps a KV cache (keys and values of every past position), so generation costs
    O(t) per token and memory grows with t; ``forward`` uses the fused SDPA kernel.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 4,
        n_kv_heads: int | None = None,
        rotary: bool = True,
        rope_base: float = 10000.0,
        causal: bool = True,
        dropout: float = 0.0,
        bias: bool = False,
    ):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(
                f"d_model ({d_model}) must divide by n_heads ({n_heads}) and n_heads by n_kv_heads ({n_kv_heads})"
            )
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        if rotary and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head dimension, got {self.head_dim}")
        self.rotary, self.rope_base, self.causal, self.dropout = rotary, rope_base, causal, dropout
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=bias)

    def project(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries ``[B, H, L, Dh]`` and keys/values ``[B, Hkv, L, Dh]``, rotated to ``positions``."""
        b, l, _ = x.shape
        q = self.q_proj(x).view(b, l, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, l, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, l, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if self.rotary:
            cos, sin = rotary_angles(positions, self.head_dim, self.rope_base)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        """The attention kernel on ``[B, H(kv), L, Dh]`` tensors; returns ``[B, H, Lq, Dh]``."""
        n_rep = self.n_heads // self.n_kv_heads
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), dropout_p=dropout, is_causal=causal)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        b, l, _ = x.shape
        if positions is None:
            positions = torch.arange(l, device=x.device)
        q, k, v = self.project(x, positions)
        out = self.attend(q, k, v, self.causal)
        return self.o_proj(out.transpose(1, 2).reshape(b, l, -1))

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        empty = torch.zeros(batch_size, self.n_kv_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"k": empty, "v": empty.clone(), "pos": 0}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        if not self.causal:
            raise RuntimeError("bidirectional attention has no recurrent (step) mode")
        pos = state["pos"]
        q, k, v = self.project(x_t[:, None, :], torch.tensor([pos], device=x_t.device))
        k = torch.cat([state["k"], k], dim=2)
        v = torch.cat([state["v"], v], dim=2)
        out = self.attend(q, k, v, causal=False)  # the one query may see every cached key
        y_t = self.o_proj(out.reshape(x_t.shape[0], -1))
        return y_t, {"k": k, "v": v, "pos": pos + 1}
