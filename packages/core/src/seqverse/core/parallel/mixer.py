"""Sequence parallelism for a :mod:`seqverse.core.backbones` attention stack, without changing it.

:func:`parallelize` swaps each :class:`~seqverse.core.backbones.attention.Attention` mixer for a
:class:`SequenceParallelAttention` that shares its projection modules (same parameters, same
names, so checkpoints and optimizers are unaffected). The new mixer takes this rank's slice
``[B, L/P, D]``, rotates queries/keys to the slice's *global* positions, and calls
:func:`~seqverse.core.parallel.attention` instead of SDPA. Everything else in a block (norms,
MLP, residuals) is per position and needs no change.
"""

from __future__ import annotations

import torch
from torch import nn

from seqverse.core.backbones.attention import Attention
from seqverse.core.parallel import layout
from seqverse.core.parallel.functional import attention


class SequenceParallelAttention(Attention):
    """:class:`Attention` on a sequence slice; the kernel is ``method`` over the ranks of ``group``."""

    def __init__(self, d_model: int, method: str = "ring", group=None, **options):
        super().__init__(d_model, **options)
        if self.dropout:
            raise ValueError("sequence-parallel attention does not support attention dropout")
        self.method, self.group = method, group

    @classmethod
    def from_attention(cls, mixer: Attention, method: str, group=None) -> SequenceParallelAttention:
        new = cls(
            mixer.q_proj.in_features,
            method=method,
            group=group,
            n_heads=mixer.n_heads,
            n_kv_heads=mixer.n_kv_heads,
            rotary=mixer.rotary,
            rope_base=mixer.rope_base,
            causal=mixer.causal,
            dropout=mixer.dropout,
            bias=mixer.q_proj.bias is not None,
        )
        new.q_proj, new.k_proj, new.v_proj, new.o_proj = (
            mixer.q_proj,
            mixer.k_proj,
            mixer.v_proj,
            mixer.o_proj,
        )
        return new

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        if positions is None:  # this slice's places in the full sequence
            positions = layout.positions(self.method, x.shape[1], self.group, x.device)
        return super().forward(x, positions)

    def attend(self, q, k, v, causal: bool) -> torch.Tensor:
        out = attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), self.method, causal, self.group
        )
        return out.transpose(1, 2)

    def step(self, x_t, state):
        raise RuntimeError("sequence-parallel attention has no step mode; generate with the plain model")


def parallelize(backbone: nn.Module, method: str, group=None) -> nn.Module:
    """Make every attention mixer of ``backbone`` (in place) sequence parallel; returns it."""
    for module in list(backbone.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Attention) and not isinstance(child, SequenceParallelAttention):
                setattr(module, child_name, SequenceParallelAttention.from_attention(child, method, group))
    return backbone
