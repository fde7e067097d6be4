"""LightSeq's DistAttn (Li et al. 2023, "LightSeq: Sequence Level Parallelism for Distributed
Training of Long Context Transformers"): ring attention with a load-balanced causal schedule.

Sec. 3.1: keys/values circulate P2P between workers, with the transfer of the next block
overlapped with attention on the current one (the loop in :mod:`~seqverse.core.parallel.ring`).
Sec. 3.2: under a causal mask contiguous slices give worker r ``r + 1`` blocks of work; LightSeq
balances it. Here the balance comes from the zigzag layout (see
:mod:`~seqverse.core.parallel.layout`): rank r holds chunks ``r`` (early) and ``2P-1-r`` (late)
of 2P chunks, and against the keys of rank ``src`` it computes

- ``src == r``: the causal diagonal on its own two chunks (3 chunk x chunk blocks);
- ``src <  r``: both query chunks against src's *early* chunk (src's late chunk is in its future);
- ``src >  r``: its *late* query chunk against both of src's chunks (its early chunk sees neither),

so every rank scores ``3 + 2 (P-1)`` blocks. Sec. 3.3 (rematerialization-aware checkpointing) is
:mod:`~seqverse.core.parallel.checkpoint`. Communication equals ring's.
"""

from __future__ import annotations

from seqverse.core.parallel import ring

ALL = slice(None)


def schedule(rank: int, src: int, n: int, causal: bool) -> list[tuple[slice, slice, bool]]:
    """Blocks rank ``rank`` computes against the keys of rank ``src`` in the zigzag layout."""
    if not causal:
        return [(ALL, ALL, False)]
    early, late = slice(0, n // 2), slice(n // 2, n)
    if src == rank:
        return [(ALL, ALL, True)]  # the two local chunks are in order, so this is plain causal
    if src < rank:
        return [(ALL, early, False)]
    return [(late, ALL, False)]


def forward(q, k, v, causal: bool, group):
    return ring.forward(q, k, v, causal, group, "lightseq", schedule)


def backward(dout, q, k, v, out, saved, causal: bool, group):
    return ring.backward(dout, q, k, v, out, saved, causal, group, "lightseq", schedule)


def simulate(q, k, v, causal: bool, size: int):
    """Single-device reference of the zigzag schedule on full ``[B, L, H, Dh]`` tensors."""
    return ring.simulate(q, k, v, causal, size, "lightseq", schedule)
