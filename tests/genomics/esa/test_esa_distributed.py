"""DNA-ESA encoder training on 2 data-parallel gloo processes equals one process (losses per step,
final weights): the key blocks are gathered from both ranks (seqverse.core.train.gather_rows), so
every read is contrasted with the whole global batch, as on one process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks


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
    finish_rank(rank, result, out)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    one = _train(tmp_path / "one")
    two = spawn_ranks(_worker, 2)
    assert len(two["losses"]) == len(one["losses"]) == 3
    assert max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True)) < 1e-5
