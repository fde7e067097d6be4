"""FlexSP execution against static sequence parallelism, measured (gloo on CPU).

For P = 2 and 4 gloo processes, the demo LM (seqverse.core.train.lm) trains on long-tailed
batches (Pareto lengths, seqverse.core.parallel.planner.long_tailed_lengths) twice on identical
batches: with each step's SP groups planned by FlexSP's MILP and built as real process groups
(seqverse.core.train.flexsp), and with static SP (one group of all P ranks, every sequence split
P ways). Reports the mean wall-clock step time (first step excluded), the ratio, and that both
runs' losses agree. CPU caveat: P processes share this machine's cores, so "parallel" groups
partly run one after another; the ratio measures communication and per-sequence overheads saved,
not what a GPU cluster would see.

    nice -n 10 .venv/bin/python benchmarks/core/parallel/flexsp_exec.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

OUT = Path(__file__).parent / "results"
SETUP = dict(n_seq=8, max_len=1024, min_len=32, capacity=1024)
STEPS = 6


def _worker(rank, size, init, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    from seqverse.core.train import LMConfig
    from seqverse.core.train.flexsp import train_flexsp

    config = LMConfig(steps=STEPS, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, seed=0)
    res = {}
    for mode in ("flexsp", "static"):
        stamps = []
        dist.barrier()
        t0 = time.perf_counter()
        result = train_flexsp(config, mode=mode, on_step=lambda step, rec, stamps=stamps: stamps.append(time.perf_counter()), **SETUP)
        steps = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
        res[mode] = {"step_seconds": steps, "losses": result.losses(), "groups": [h["groups"] for h in result.history]}
    if rank == 0:
        with open(out, "w") as fh:
            json.dump(res, fh)
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)


def run(size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(r, size, "file://" + os.path.join(tmp, "store"), out)) for r in range(size)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(1800)
        if [p.exitcode for p in procs] != [0] * size:
            raise RuntimeError(f"workers exited with {[p.exitcode for p in procs]}")
        return json.loads(Path(out).read_text())


def main():
    rows = []
    for size in (2, 4):
        r = run(size)
        mean = {m: sum(r[m]["step_seconds"][1:]) / (STEPS - 1) for m in ("flexsp", "static")}
        agree = max(abs(a - b) for a, b in zip(r["flexsp"]["losses"], r["static"]["losses"]))
        rows.append({"processes": size, "flexsp_step_s": round(mean["flexsp"], 3), "static_step_s": round(mean["static"], 3),
                     "static_over_flexsp": round(mean["static"] / mean["flexsp"], 2), "flexsp_groups_per_step": r["flexsp"]["groups"],
                     "max_loss_difference": agree})
        print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "flexsp_exec.json").write_text(json.dumps({"setup": SETUP, "steps": STEPS, "rows": rows}, indent=2) + "\n")
    lines = ["| processes | FlexSP step (s) | static SP step (s) | static / FlexSP | FlexSP groups per step | max loss diff |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['processes']} | {r['flexsp_step_s']} | {r['static_step_s']} | {r['static_over_flexsp']} | "
              f"{r['flexsp_groups_per_step']} | {r['max_loss_difference']:.1e} |" for r in rows]
    (OUT / "flexsp_exec.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
