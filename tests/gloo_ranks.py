"""Spawning P gloo processes for the distributed tests, in one place.

``spawn_ranks(worker, size, payload)`` starts ``worker(rank, size, init, payload, out, *extra)`` in
``size`` spawned processes with a file rendezvous (``init``: no port to race for) and returns the
JSON that rank 0 wrote to ``out``. A worker ends with ``finish_rank``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch.distributed as dist
import torch.multiprocessing as mp


def spawn_ranks(worker, size: int, payload=None, *extra, timeout: float = 300):
    """Run ``worker`` on ``size`` processes; ``payload`` defaults to a scratch directory they share."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        init = "file://" + os.path.join(tmp, "store")
        ctx = mp.get_context("spawn")
        arg = tmp if payload is None else payload
        procs = [ctx.Process(target=worker, args=(r, size, init, arg, out, *extra)) for r in range(size)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
        if codes != [0] * size:
            raise RuntimeError(f"gloo workers exited with {codes}")
        with open(out) as fh:
            return json.load(fh)


def finish_rank(rank: int, result, out: str) -> None:
    """Rank 0 writes ``result``; then every rank leaves without gloo's C++ teardown.

    Under load a rank tearing down after its peer has gone could abort ("terminate called without
    an active exception", exit -6) after every result was already written.
    """
    if rank == 0:
        with open(out, "w") as fh:
            json.dump(result, fh)
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def gather_by_key(results: dict) -> dict:
    """Every rank's ``results`` as {key: [rank 0's value, rank 1's, ...]} (a collective: call on all ranks)."""
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, results)
    return {k: [g[k] for g in gathered] for k in gathered[0]}
