"""Communication for sequence parallelism, with byte accounting.

Every collective or point-to-point transfer the parallel methods make goes through this module, so
each call can be recorded in a :class:`Ledger`: which method sent it, in the forward or backward
pass, with which operation, and how many bytes *this rank sent*. The attention loops also record
their compute (query x key pairs scored), which is how the load-balance table is measured.

Bytes sent per rank, by operation (P ranks in the group, ``n`` = bytes of the local tensor):

- ``send`` (ring P2P): ``n``.
- ``all_to_all``: ``n * (P - 1) / P`` (the block addressed to oneself stays local).
- ``all_gather``: ``n * (P - 1)`` (a ring all-gather forwards P - 1 blocks of size ``n``).

With world size 1 (no process group) every function here is the identity and records nothing, so
the parallel methods run unchanged on a single device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class Record:
    method: str  # "ring", "lightseq", "ulysses", "lasp2"
    phase: str  # "forward" or "backward"
    op: str  # "send", "all_to_all", "all_gather", or "compute"
    nbytes: int = 0  # bytes this rank sent
    work: int = 0  # for op == "compute": query x key pairs scored (per batch element and head)


@dataclass
class Ledger:
    """The records made while it was active (see :func:`track`)."""

    records: list[Record] = field(default_factory=list)

    def bytes_sent(self, method: str | None = None, phase: str | None = None) -> int:
        return sum(r.nbytes for r in self._select(method, phase))

    def work(self, method: str | None = None, phase: str | None = None) -> int:
        return sum(r.work for r in self._select(method, phase))

    def _select(self, method, phase):
        return [r for r in self.records if method in (None, r.method) and phase in (None, r.phase)]


_LEDGERS: list[Ledger] = []


@contextlib.contextmanager
def track():
    """``with track() as ledger: ...`` records every transfer and compute block made inside."""
    ledger = Ledger()
    _LEDGERS.append(ledger)
    try:
        yield ledger
    finally:
        _LEDGERS.remove(ledger)


def record(method: str, phase: str, op: str, nbytes: int = 0, work: int = 0) -> None:
    for ledger in _LEDGERS:
        ledger.records.append(Record(method, phase, op, int(nbytes), int(work)))


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def rank_and_size(group=None) -> tuple[int, int]:
    """This process's rank in ``group`` and the group size; ``(0, 1)`` without torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _global_rank(group, group_rank: int) -> int:
    return group_rank if group is None else dist.get_global_rank(group, group_rank)


class RingExchange:
    """Send tensors to rank + 1 and receive the same shapes from rank - 1, asynchronously.

    Started before the compute that does not need the incoming tensors and waited on after it,
    so the transfer overlaps that compute (gloo runs P2P on its own threads, NCCL on its stream).
    """

    def __init__(self, tensors: list[torch.Tensor], group, method: str, phase: str, tag: int = 0):
        rank, size = rank_and_size(group)
        self.sent = [t.contiguous() for t in tensors]  # kept alive until the sends complete
        self.received = [torch.empty_like(t) for t in tensors]
        nxt, prv = _global_rank(group, (rank + 1) % size), _global_rank(group, (rank - 1) % size)
        ops = []
        for i, (out, inc) in enumerate(zip(self.sent, self.received, strict=True)):
            # distinct tags keep two exchanges in flight at once (keys/values and their gradients) apart
            ops.append(dist.P2POp(dist.isend, out, nxt, group, 16 * tag + i))
            ops.append(dist.P2POp(dist.irecv, inc, prv, group, 16 * tag + i))
            record(method, phase, "send", nbytes(out))
        self.requests = dist.batch_isend_irecv(ops)

    def wait(self) -> list[torch.Tensor]:
        for request in self.requests:
            request.wait()
        return self.received


def all_to_all(
    x: torch.Tensor, scatter_dim: int, gather_dim: int, group, method: str, phase: str
) -> torch.Tensor:
    """Split ``x`` in P blocks along ``scatter_dim``, send block i to rank i, concatenate what arrives
    (in rank order) along ``gather_dim``. DeepSpeed-Ulysses' sequence <-> head re-partition."""
    rank, size = rank_and_size(group)
    if size == 1:
        return x
    inputs = [c.contiguous() for c in x.chunk(size, dim=scatter_dim)]
    outputs = [torch.empty_like(c) for c in inputs]
    record(method, phase, "all_to_all", nbytes(x) * (size - 1) // size)
    if _native_all_to_all(x.device, group):
        dist.all_to_all(outputs, inputs, group=group)
    else:
        all_to_all_p2p(outputs, inputs, group)
    return torch.cat(outputs, dim=gather_dim)


def all_to_all_p2p(outputs: list[torch.Tensor], inputs: list[torch.Tensor], group) -> None:
    """All-to-all from P2P sends and receives, for gloo builds without ``all_to_all``.

    In round s (1 <= s < P) rank r sends its block for rank r + s and receives from rank r - s,
    so every pair exchanges exactly once and no round waits on a rank that is not ready.
    """
    rank, size = rank_and_size(group)
    outputs[rank].copy_(inputs[rank])
    for s in range(1, size):
        dst, src = (rank + s) % size, (rank - s) % size
        ops = [
            dist.P2POp(dist.isend, inputs[dst], _global_rank(group, dst), group),
            dist.P2POp(dist.irecv, outputs[src], _global_rank(group, src), group),
        ]
        for request in dist.batch_isend_irecv(ops):
            request.wait()


_NATIVE_ALL_TO_ALL: dict[str, bool] = {}


def _native_all_to_all(device: torch.device, group) -> bool:
    """Whether the backend has ``all_to_all`` (NCCL and MPI do; gloo only in some builds).

    Probed once, collectively, on the first call (all ranks of ``group`` are in that call)."""
    if device.type not in _NATIVE_ALL_TO_ALL:
        ok = True
        if dist.get_backend(group) == "gloo":
            probe = [torch.zeros(1, device=device) for _ in range(dist.get_world_size(group))]
            try:
                dist.all_to_all([torch.empty_like(p) for p in probe], probe, group=group)
            except RuntimeError:
                ok = False  # every rank fails the same way, so all of them fall back together
        _NATIVE_ALL_TO_ALL[device.type] = ok
    return _NATIVE_ALL_TO_ALL[device.type]


def all_gather(x: torch.Tensor, group, method: str, phase: str) -> torch.Tensor:
    """``[...] -> [P, ...]``: every rank's ``x``, in rank order."""
    rank, size = rank_and_size(group)
    if size == 1:
        return x[None]
    parts = [torch.empty_like(x) for _ in range(size)]
    record(method, phase, "all_gather", nbytes(x) * (size - 1))
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.stack(parts)
