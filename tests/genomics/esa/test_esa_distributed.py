"""DNA-ESA encoder training on 2 data-parallel gloo processes equals one process (losses per step,
final weights): the key blocks are gathered from both ranks (seqverse.core.train.gather_rows), so
every read is contrasted with the whole global batch, as on one process."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _train(out: Path, collect: bool = True) -> dict | None:
    from safetensors.torch import load_file

    from seqverse.genomics.esa.model import EncoderConfig
    from seqverse.genomics.esa.train import TrainConfig, train

    rng = np.random.default_rng(4)
    out.mkdir(parents=True, exist_ok=True)
    genome = out / "g.fa"
    genome.write_text(">g\n" + "".join(rng.choice(list("ACGT"), 6000)) + "\n")
    cfg = EncoderConfig(k=4, pool=4, d_model=32, n_heads=2, d_out=32)
    tc = TrainConfig(steps=3, batch_size=6, fragment_len=120, read_len_min=60, read_len_max=80, lr=3e-3, sub_rate_max=0.15)
    train([str(genome)], out / "run", cfg, tc, progress=False)
    if not collect:
        return None
    weights = load_file(str(out / "run" / "checkpoint" / "model.safetensors"))
    return {"losses": [json.loads(line)["loss"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()],
            "weights": torch.cat([weights[k].flatten() for k in sorted(weights)]).tolist()}


def _worker(rank, size, init, tmp, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    result = _train(Path(tmp) / f"r{rank}", collect=rank == 0)  # rank 0 writes the run directory
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)  # skip gloo's teardown (see tests/core/parallel/sp_workers.py)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    one = _train(tmp_path / "one")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(r, 2, "file://" + os.path.join(tmp, "store"), tmp, out)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
        assert [p.exitcode for p in procs] == [0, 0]
        two = json.loads(Path(out).read_text())
    assert len(two["losses"]) == len(one["losses"]) == 3
    assert max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True)) < 1e-5
