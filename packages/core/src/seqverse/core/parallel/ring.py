"""Ring attention: keys and values travel around a ring of P ranks, queries stay put.

Ring Self-Attention (Li et al. 2021, "Sequence Parallelism: Long Sequence Training from System
Perspective", Sec. 3.1): rank r holds the r-th contiguous slice of Q, K, V; in P steps every rank
sees every key/value block, passing its current block to rank r + 1 while it computes on it. As in
Ring Attention (Liu et al. 2023) the partial results are merged with online softmax, so no rank
ever holds a full ``[L/P, L]`` score matrix.

Backward (FlashAttention-2 style): each rank keeps Q, dO, O and lse; K/V go round the ring again
and the key/value gradients travel *with* them, every rank adding its contribution, until after
P sends the accumulator reaches its owner. Per rank and call: forward sends K, V ``P-1`` times;
backward sends K, V ``P-1`` times and dK, dV (float32) ``P`` times.

Under a causal mask rank r only needs key blocks ``<= r``, so its work grows with r (rank P-1
does P times the work of rank 0). :mod:`~seqverse.core.parallel.lightseq` fixes that imbalance
with a different layout and the same loop, parameterised here by a *schedule*.
"""

from __future__ import annotations

import torch

from seqverse.core.parallel import comm, layout
from seqverse.core.parallel.blocks import (
    attention_block,
    attention_block_backward,
    attention_block_ref,
    empty_result,
    merge,
    pairs,
)

ALL = slice(None)


def schedule(rank: int, src: int, n: int, causal: bool) -> list[tuple[slice, slice, bool]]:
    """Blocks rank ``rank`` computes against the keys of rank ``src`` in the contiguous layout:
    ``(query slice, key slice, causal)`` over the ``n`` local positions."""
    if not causal or src < rank:
        return [(ALL, ALL, False)]
    if src == rank:
        return [(ALL, ALL, True)]
    return []  # keys from the future: nothing to compute


def ring_forward(q, k, v, causal: bool, group, method: str = "ring", schedule=schedule):
    """``(out, lse)`` for local ``q [B, H, n, Dh]``, ``k, v [B, Hkv, n, Dh]`` (out in float32)."""
    rank, size = comm.rank_and_size(group)
    out, lse = empty_result(q)
    kv = torch.stack([k, v])
    for step in range(size):
        src = (rank - step) % size
        pending = comm.RingExchange([kv], group, method, "forward") if step < size - 1 else None
        for qs, ks, block_causal in schedule(rank, src, q.shape[2], causal):
            q_b, k_b, v_b = q[:, :, qs], kv[0][:, :, ks], kv[1][:, :, ks]
            block_out, block_lse = attention_block(q_b, k_b, v_b, block_causal)
            out[:, :, qs], lse[:, :, qs] = merge(out[:, :, qs], lse[:, :, qs], block_out, block_lse)
            comm.record(method, "forward", "compute", work=pairs(q_b.shape[2], k_b.shape[2], block_causal))
        if pending is not None:
            (kv,) = pending.wait()  # the next block arrived while this one was computed
    return out, lse


def ring_backward(dout, q, k, v, out, lse, causal: bool, group, method: str = "ring", schedule=schedule):
    """``(dq, dk, dv)`` for the local tensors, with the dK/dV accumulators riding the ring."""
    rank, size = comm.rank_and_size(group)
    acc = torch.promote_types(q.dtype, torch.float32)
    dq = torch.zeros(q.shape, dtype=acc, device=q.device)
    kv = torch.stack([k, v])
    dkv, pending_dkv = None, None
    for step in range(size):
        src = (rank - step) % size
        pending_kv = comm.RingExchange([kv], group, method, "backward") if step < size - 1 else None
        contribution = torch.zeros(kv.shape, dtype=acc, device=kv.device)
        for qs, ks, block_causal in schedule(rank, src, q.shape[2], causal):
            dq_b, dk_b, dv_b = attention_block_backward(
                dout[:, :, qs],
                q[:, :, qs],
                kv[0][:, :, ks],
                kv[1][:, :, ks],
                out[:, :, qs],
                lse[:, :, qs],
                block_causal,
            )
            dq[:, :, qs] += dq_b
            contribution[0][:, :, ks] += dk_b
            contribution[1][:, :, ks] += dv_b
        # the accumulator for src's keys arrives from rank - 1 (rank src started it at step 0)
        dkv = contribution if step == 0 else pending_dkv.wait()[0] + contribution
        if size > 1:
            pending_dkv = comm.RingExchange([dkv], group, method, "backward", tag=1)
        if pending_kv is not None:
            (kv,) = pending_kv.wait()
    if size > 1:
        (dkv,) = pending_dkv.wait()  # after P sends our own accumulator is back, complete
    return dq.to(q.dtype), dkv[0].to(k.dtype), dkv[1].to(v.dtype)


def heads_first(*xs: torch.Tensor) -> list[torch.Tensor]:
    """``[B, L, H, Dh] <-> [B, H, L, Dh]`` (the public layout and the kernels' layout)."""
    return [x.transpose(1, 2) for x in xs]


def forward(q, k, v, causal: bool, group, method: str = "ring", schedule=schedule):
    """The method on ``[B, n, H, Dh]`` tensors: ``(out, tensors backward needs besides q, k, v, out)``."""
    out, lse = ring_forward(*heads_first(q, k, v), causal, group, method, schedule)
    return out.to(q.dtype).transpose(1, 2), (lse,)


def backward(dout, q, k, v, out, saved, causal: bool, group, method: str = "ring", schedule=schedule):
    """``(dq, dk, dv)`` on ``[B, n, H, Dh]`` tensors."""
    (lse,) = saved
    grads = ring_backward(*heads_first(dout, q, k, v, out), lse, causal, group, method, schedule)
    return heads_first(*grads)


def simulate(q, k, v, causal: bool, size: int, method: str = "ring", schedule=schedule) -> torch.Tensor:
    """Single-device reference: run the ring algorithm for ``size`` ranks in one process with the
    plain attention formula, on full ``[B, L, H, Dh]`` tensors. Equals softmax attention."""
    qs, ks, vs = (
        heads_first(*(layout.shard_for_rank(x, method, r, size) for r in range(size))) for x in (q, k, v)
    )
    outs = []
    for rank in range(size):
        out, lse = empty_result(qs[rank])
        for step in range(size):
            src = (rank - step) % size  # the block that reached ``rank`` after ``step`` passes
            for q_sl, k_sl, block_causal in schedule(rank, src, qs[rank].shape[2], causal):
                block = attention_block_ref(
                    qs[rank][:, :, q_sl], ks[src][:, :, k_sl], vs[src][:, :, k_sl], block_causal
                )
                out[:, :, q_sl], lse[:, :, q_sl] = merge(out[:, :, q_sl], lse[:, :, q_sl], *block)
        outs.append(out.to(q.dtype).transpose(1, 2))
    return layout.unshard_parts(outs, method)
