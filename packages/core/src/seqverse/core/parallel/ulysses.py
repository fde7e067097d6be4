"""DeepSpeed-Ulysses (Jacobs et al. 2023, "DeepSpeed Ulysses: System Optimizations for Enabling
Training of Extreme Long Sequence Transformer Models", Sec. 3): all-to-all from sequence to heads.

Each rank holds a contiguous slice of the sequence with all heads. One all-to-all per tensor
re-partitions Q, K, V so that each rank holds the *full* sequence for ``H/P`` heads; attention is
then an ordinary local kernel; a final all-to-all brings the output back to sequence slices.
Backward mirrors it: dO goes sequence -> heads, dQ, dK, dV go heads -> sequence. Per rank and
call the forward sends ``(P-1)/P`` of its local Q, K, V and O, and the backward the same of dO,
dQ, dK, dV, so per-rank traffic *falls* as P grows.

GQA/MQA: the key/value heads are split over ranks too, so their count must divide by P; when it
does not (8 query heads, 2 kv heads, P = 4), each kv head is repeated the fewest times that make it
divide (as DeepSpeed does), and the gradients of the copies are summed.
"""

from __future__ import annotations

import torch

from seqverse.core.parallel import comm, layout
from seqverse.core.parallel.blocks import (
    attention_block,
    attention_block_backward,
    attention_block_ref,
    pairs,
)


def kv_repeats(n_heads: int, n_kv_heads: int, size: int) -> int:
    """The fewest copies of each kv head so that kv heads divide over ``size`` ranks."""
    if n_heads % size:
        raise ValueError(f"ulysses: {n_heads} query heads do not divide over {size} ranks")
    for rep in range(1, n_heads // n_kv_heads + 1):
        if (n_kv_heads * rep) % size == 0 and n_heads % (n_kv_heads * rep) == 0:
            return rep
    raise ValueError(f"ulysses: {n_kv_heads} kv heads cannot be spread over {size} ranks")


def forward(q, k, v, causal: bool, group):
    """``[B, n, H, Dh]`` local slices -> ``(out [B, n, H, Dh], saved)``."""
    _, size = comm.rank_and_size(group)
    rep = kv_repeats(q.shape[2], k.shape[2], size)
    k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    # sequence -> heads: [B, n, H, Dh] -> [B, L, H/P, Dh], then [B, H/P, L, Dh] for the kernel
    qh, kh, vh = (comm.all_to_all(x, 2, 1, group, "ulysses", "forward").transpose(1, 2) for x in (q, k, v))
    out_h, lse = attention_block(qh, kh, vh, causal)
    comm.record(
        "ulysses",
        "forward",
        "compute",
        work=pairs(qh.shape[2], kh.shape[2], causal) * qh.shape[1] // q.shape[2],
    )
    out = comm.all_to_all(out_h.transpose(1, 2), 1, 2, group, "ulysses", "forward")  # heads -> sequence
    return out, (qh, kh, vh, out_h, lse)


def backward(dout, q, k, v, out, saved, causal: bool, group):
    qh, kh, vh, out_h, lse = saved
    dout_h = comm.all_to_all(dout, 2, 1, group, "ulysses", "backward").transpose(1, 2)
    grads_h = attention_block_backward(dout_h, qh, kh, vh, out_h, lse, causal)
    dq, dk, dv = (comm.all_to_all(g.transpose(1, 2), 1, 2, group, "ulysses", "backward") for g in grads_h)
    b, n, hkv, d = k.shape
    rep = dk.shape[2] // hkv
    return dq, dk.view(b, n, hkv, rep, d).sum(3), dv.view(b, n, hkv, rep, d).sum(3)


def simulate(q, k, v, causal: bool, size: int) -> torch.Tensor:
    """Single-device reference on full ``[B, L, H, Dh]`` tensors: the all-to-alls as re-slicing."""
    rep = kv_repeats(q.shape[2], k.shape[2], size)
    k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    # rank r's local slices; then the all-to-all gives rank r heads group r of every slice
    parts = [[layout.shard_for_rank(x, "ulysses", r, size) for r in range(size)] for x in (q, k, v)]
    outs = []
    for rank in range(size):
        qh, kh, vh = (torch.cat([p.chunk(size, dim=2)[rank] for p in ps], dim=1) for ps in parts)
        out_h, _ = attention_block_ref(qh.transpose(1, 2), kh.transpose(1, 2), vh.transpose(1, 2), causal)
        outs.append(out_h.transpose(1, 2))
    return torch.cat(outs, dim=2)  # heads group r came from rank r
