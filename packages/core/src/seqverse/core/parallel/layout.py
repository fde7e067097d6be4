"""Which positions of the full sequence each rank holds, and moving tensors in and out of that layout.

- **contiguous** (ring, Ulysses, LASP-2): rank r holds positions ``[r L/P, (r+1) L/P)``.
- **zigzag** (causal LightSeq): the sequence is cut into 2P chunks and rank r holds chunks r and
  2P-1-r. Under a causal mask an early chunk has little to attend to and a late chunk much, so
  pairing them gives every rank the same work (LightSeq, Li et al. 2023, Sec. 3.2 balances the
  same workload by rescheduling; the zigzag layout reaches the balance with no extra messages).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from seqverse.core.parallel.comm import rank_and_size

LAYOUT = {"ring": "contiguous", "ulysses": "contiguous", "lasp2": "contiguous", "lightseq": "zigzag"}


def chunks_of(method: str, rank: int, size: int) -> tuple[list[int], int]:
    """The chunk ids rank ``rank`` holds, in order, and how many chunks the sequence is cut into."""
    if method not in LAYOUT:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(LAYOUT)}")
    if LAYOUT[method] == "zigzag":
        return [rank, 2 * size - 1 - rank], 2 * size
    return [rank], size


def shard_for_rank(x: torch.Tensor, method: str, rank: int, size: int, dim: int = 1) -> torch.Tensor:
    """Rank ``rank``'s part of the full tensor ``x`` (no communication: every rank has ``x``)."""
    ids, n_chunks = chunks_of(method, rank, size)
    if x.shape[dim] % n_chunks:
        raise ValueError(
            f"{method}: sequence length {x.shape[dim]} must divide into {n_chunks} equal chunks "
            f"({size} ranks); pad the sequence"
        )
    parts = x.chunk(n_chunks, dim=dim)
    return torch.cat([parts[i] for i in ids], dim=dim)


def unshard_parts(parts: list[torch.Tensor], method: str, dim: int = 1) -> torch.Tensor:
    """The full tensor from every rank's part (``parts[r]`` from rank r): inverse of sharding."""
    size = len(parts)
    chunks: dict[int, torch.Tensor] = {}
    for rank, part in enumerate(parts):
        ids, _ = chunks_of(method, rank, size)
        chunks.update(zip(ids, part.chunk(len(ids), dim=dim), strict=True))
    return torch.cat([chunks[i] for i in sorted(chunks)], dim=dim)


def shard(x: torch.Tensor, method: str, group=None, dim: int = 1) -> torch.Tensor:
    """This rank's part of the full ``[B, L, ...]`` tensor ``x``, in the layout ``method`` needs."""
    rank, size = rank_and_size(group)
    return shard_for_rank(x, method, rank, size, dim)


def unshard(x_local: torch.Tensor, method: str, group=None, dim: int = 1) -> torch.Tensor:
    """The full tensor, gathered from every rank's part (an all-gather; not differentiable)."""
    rank, size = rank_and_size(group)
    if size == 1:
        return x_local
    parts = [torch.empty_like(x_local) for _ in range(size)]
    dist.all_gather(parts, x_local.contiguous(), group=group)
    return unshard_parts(parts, method, dim)


def positions(method: str, local_len: int, group=None, device=None) -> torch.Tensor:
    """Global positions ``[local_len]`` of this rank's tokens (for rotary embeddings)."""
    rank, size = rank_and_size(group)
    ids, n_chunks = chunks_of(method, rank, size)
    chunk = local_len // len(ids)
    return torch.cat([torch.arange(i * chunk, (i + 1) * chunk, device=device) for i in ids])
