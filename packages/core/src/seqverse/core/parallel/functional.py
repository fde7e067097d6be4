"""``attention(q, k, v, method)``: the one entry point to the distributed softmax attentions.

Each method module (:mod:`ring`, :mod:`lightseq`, :mod:`ulysses`) provides
``forward(q, k, v, causal, group) -> (out, saved)`` and
``backward(dout, q, k, v, out, saved, causal, group) -> (dq, dk, dv)`` with its communication
written out; :class:`DistributedAttention` joins the two into one autograd function, so torch
autograd never sees (or re-derives) the communication.
"""

from __future__ import annotations

import torch

from seqverse.core.parallel import checkpoint, lightseq, ring, ulysses

METHODS = {"ring": ring, "lightseq": lightseq, "ulysses": ulysses}


class DistributedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, method: str, causal: bool, group):
        impl = METHODS[method]
        out, saved = checkpoint.cached_forward(lambda: impl.forward(q, k, v, causal, group))
        ctx.save_for_backward(q, k, v, out, *saved)
        ctx.impl, ctx.causal, ctx.group = impl, causal, group
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, *saved = ctx.saved_tensors
        dq, dk, dv = ctx.impl.backward(dout.contiguous(), q, k, v, out, saved, ctx.causal, ctx.group)
        return dq, dk, dv, None, None, None


def attention(q, k, v, method: str, causal: bool = True, group=None) -> torch.Tensor:
    """Softmax attention over the whole sequence from this rank's part of it.

    ``q [B, L/P, H, Dh]``, ``k, v [B, L/P, Hkv, Dh]`` (``Hkv`` divides ``H``: MHA, GQA, MQA), in the
    layout :func:`~seqverse.core.parallel.shard` gives for ``method``; returns this rank's output
    ``[B, L/P, H, Dh]``, equal to the matching rows of single-device attention on the full tensors.
    Without an initialised process group it runs on one device.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attention method {method!r}; choose one of: {', '.join(METHODS)}")
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4:
        raise ValueError(
            f"attention: expected q [B, L/P, H, Dh] and k, v [B, L/P, Hkv, Dh], got "
            f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3] or q.shape[2] % k.shape[2]:
        raise ValueError(
            f"attention: q {list(q.shape)} and k/v {list(k.shape)} must share batch, length and "
            f"head size, and kv heads must divide query heads"
        )
    if method == "lightseq" and q.shape[1] % 2:
        raise ValueError(f"lightseq: the local length {q.shape[1]} must be even (two zigzag chunks)")
    return DistributedAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), method, causal, group)
