"""LightSeq's rematerialization-aware checkpointing (Li et al. 2023, Sec. 3.3).

Ordinary activation checkpointing of a transformer block keeps only the block's input and re-runs
the whole block in backward, attention included, so every step runs attention's forward twice.
But the attention backward (FlashAttention's) needs only Q, K, V, the output O and the softmax
log-sum-exp: keep O and lse at the checkpoint, and the recomputation can *stop at the attention
output*. :class:`RematCheckpoint` wraps a block so that backward recomputes the norms,
projections and MLP but replays the saved attention output instead of re-running the kernel (and,
for the distributed methods, its communication). :func:`attention_forwards` counts how many times
an attention forward really ran, so the saving can be seen: one per layer per step, not two.

It works for any block whose attention goes through :func:`seqverse.core.parallel.attention`
(e.g. a backbone converted with :func:`seqverse.core.parallel.parallelize`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_FORWARDS = [0]


def attention_forwards() -> int:
    """How many attention forwards (kernel + communication) have run in this process."""
    return _FORWARDS[0]


class _OutputCache:
    """The attention results of one checkpointed block call, in call order."""

    def __init__(self):
        self.entries: list = []
        self.cursor = 0
        self.replaying = False


_ACTIVE: list[_OutputCache] = []


def cached_forward(compute):
    """Run ``compute() -> (out, saved)``, or replay it when a checkpoint is recomputing its block."""
    cache = _ACTIVE[-1] if _ACTIVE else None
    if cache is not None and cache.replaying:
        out, saved = cache.entries[cache.cursor]
        cache.cursor += 1
        return out.detach(), [s.detach() for s in saved]
    _FORWARDS[0] += 1
    out, saved = compute()
    if cache is not None:  # (a cache is active only when gradients are being recorded)
        cache.entries.append((out.detach(), [s.detach() for s in saved]))
    return out, saved


class RematCheckpoint(nn.Module):
    """Checkpoint ``block`` (any ``x -> y`` module) but keep its attention outputs: backward
    recomputes everything up to the attention output and nothing of attention itself."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self.block(x)
        cache = _OutputCache()

        def run(x):
            cache.replaying, cache.cursor = bool(cache.entries), 0  # second call = recomputation
            _ACTIVE.append(cache)
            try:
                return self.block(x)
            finally:
                _ACTIVE.pop()

        return checkpoint(run, x, use_reentrant=False)


def checkpoint_blocks(backbone: nn.Module) -> nn.Module:
    """Wrap every block of a :class:`~seqverse.core.backbones.base.Backbone` in place; returns it.

    Parameter names gain a ``.block`` (``layers.0.block.mixer.q_proj.weight``)."""
    for i, layer in enumerate(backbone.layers):
        if not isinstance(layer, RematCheckpoint):
            backbone.layers[i] = RematCheckpoint(layer)
    return backbone


def full_block_checkpoint_forward(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``backbone(x)`` with ordinary activation checkpointing of every block (the baseline that
    re-runs attention in backward), for comparison with :func:`checkpoint_blocks`."""
    h = x
    for layer in backbone.layers:
        h = checkpoint(layer, h, use_reentrant=False)
    return backbone.norm_f(h)
