"""``seqverse bench parallel``: counted communication payload, load balance, LASP-2 bytes, the planner.

The communication tables report the *counted payload*, not measured network traffic: P gloo
processes run the method forward and backward on Llama-7B-like shapes (32 heads of 128; MHA, and
GQA with 8 kv heads) and :mod:`~seqverse.core.parallel.comm` adds up the size of every tensor each
rank hands to a collective, scaled by the operation's per-rank factor (send ``n``, all-to-all
``n (P-1)/P``, all-gather ``n (P-1)``). Those are the same factors the analytic formula uses, so
``counted_equals_formula`` checks that the methods make the collectives the formula assumes (no
extra or missing transfers), not the wire bytes of gloo or NCCL (protocol headers, the algorithm
the backend picks). Beside them: Megatron-LM tensor parallelism with sequence parallelism
(Korthikanti et al. 2022), which per layer all-gathers and reduce-scatters the ``[B, L, D]``
activations twice in the forward and twice in the backward pass: ``8 (P-1)/P B L D`` elements
per rank. Bytes are float32 (the CPU run); per-rank payload scales linearly with L for all
methods but LASP-2.

Load balance is reported as causal work, the query x key pairs each rank scores (counted in the
attention loops), and as time, each rank's forward + backward wall-clock seconds (timed; on a
shared CPU the times are noisy and include waiting for peers).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import torch

METHODS = ("ring", "lightseq", "ulysses")
LLAMA = {"heads": 32, "head_dim": 128}
MAX_PROCESSES = 32  # one gloo process per rank on this machine


# ----------------------------------------------------------------------------- analytic formulas
def formula_bytes(
    method: str,
    size: int,
    batch: int,
    length: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    element: int = 4,
    accumulate: int = 4,
) -> int:
    """Bytes one rank sends in one forward + backward of ``method`` (see each method's docstring)."""
    n = length // size
    if method in ("ring", "lightseq"):
        kv = 2 * batch * n * kv_heads * head_dim
        return (size - 1) * kv * element * 2 + size * kv * accumulate  # K,V fwd; K,V and dK,dV bwd
    if method == "ulysses":
        from seqverse.core.parallel.ulysses import kv_repeats

        kv_heads *= kv_repeats(heads, kv_heads, size)
        per_pass = batch * n * head_dim * (2 * heads + 2 * kv_heads) * element  # q,k,v,o | do,dq,dk,dv
        return 2 * per_pass * (size - 1) // size
    if method == "lasp2":
        return 2 * (size - 1) * batch * heads * head_dim * head_dim * element  # one all-gather per pass
    raise ValueError(method)


def megatron_sp_bytes(size: int, batch: int, length: int, hidden: int, element: int = 4) -> int:
    """Megatron-LM TP + SP, one layer forward + backward: 4 all-gathers + 4 reduce-scatters."""
    return 8 * (size - 1) * batch * length * hidden * element // size


# ----------------------------------------------------------------------------- measurement workers
def _worker(rank: int, size: int, init: str, jobs: list[dict], out: str) -> None:
    import torch.distributed as dist

    from seqverse.core import parallel
    from seqverse.core.parallel import comm
    from seqverse.core.parallel.layout import shard_for_rank

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    results = []
    for job in jobs:
        gen = torch.Generator().manual_seed(0)
        b, length, h, hkv, d = job["batch"], job["length"], job["heads"], job["kv_heads"], job["head_dim"]
        q = torch.randn(b, length, h, d, generator=gen)
        k, v = (torch.randn(b, length, hkv, d, generator=gen) for _ in range(2))
        method = job["method"]
        layout_name = "lasp2" if method == "lasp2" else method
        local = [shard_for_rank(x, layout_name, rank, size).requires_grad_() for x in (q, k, v)]
        dist.barrier()  # start the clocks together
        start = time.perf_counter()
        with comm.track() as ledger:
            if method == "lasp2":
                out_ = parallel.linear_attention(*local, causal=True)
            else:
                out_ = parallel.attention(*local, method, causal=True)
            out_.backward(torch.ones_like(out_))
        seconds = time.perf_counter() - start
        results.append({**job, "bytes": ledger.bytes_sent(method), "work": ledger.work(method, "forward"),
                        "seconds": seconds})
    gathered = [None] * size
    dist.all_gather_object(gathered, results)
    if rank == 0:
        with open(out, "w") as fh:
            json.dump(gathered, fh)
    dist.barrier()
    dist.destroy_process_group()


def measure(size: int, jobs: list[dict]) -> list[list[dict]]:
    """Run ``jobs`` on ``size`` gloo processes; ``result[rank][job]`` has the rank's counted payload
    bytes, causal work (pairs) and forward + backward seconds."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        init = "file://" + os.path.join(tmp, "store")
        mp.start_processes(_worker, args=(size, init, jobs, out), nprocs=size, start_method="spawn")
        with open(out) as fh:
            return json.load(fh)


# ----------------------------------------------------------------------------- the tables
def communication_table(
    sizes=(2, 4, 8), length: int = 1024, batch: int = 1, progress=None
) -> tuple[list, list]:
    """Counted payload bytes per rank per layer (forward + backward) against formula and Megatron
    TP+SP; and each rank's causal work (query x key pairs) and time for ring and LightSeq."""
    comm_rows, balance_rows = [], []
    for size in sizes:
        jobs = [
            {
                "method": m,
                "attention": name,
                "batch": batch,
                "length": length,
                "heads": LLAMA["heads"],
                "kv_heads": kv,
                "head_dim": LLAMA["head_dim"],
            }
            for name, kv in (("MHA", 32), ("GQA-8", 8))
            for m in (*METHODS, "lasp2")
            if not (m == "lasp2" and name == "GQA-8")
        ]
        if progress:
            progress(f"running {len(jobs)} jobs on {size} gloo processes (L = {length})")
        per_rank = measure(size, jobs)
        for j, job in enumerate(jobs):
            counted = [per_rank[r][j]["bytes"] for r in range(size)]
            hidden = job["heads"] * job["head_dim"]
            formula = formula_bytes(
                job["method"], size, batch, length, job["heads"], job["kv_heads"], job["head_dim"]
            )
            megatron = megatron_sp_bytes(size, batch, length, hidden)
            comm_rows.append(
                {
                    "method": job["method"],
                    "attention": "linear" if job["method"] == "lasp2" else job["attention"],
                    "P": size,
                    "counted_payload_MiB": max(counted) / 2**20,
                    "formula_MiB": formula / 2**20,
                    "megatron_sp_MiB": megatron / 2**20,
                    "megatron_over_counted": megatron / max(counted),
                    "counted_equals_formula": all(m == formula for m in counted),
                }
            )
            if job["method"] in ("ring", "lightseq") and job["attention"] == "MHA":
                balance_rows.append({"method": job["method"], "P": size,
                                     **balance([per_rank[r][j]["work"] for r in range(size)],
                                               [per_rank[r][j]["seconds"] for r in range(size)])})
    return comm_rows, balance_rows


def balance(pairs: list[int], seconds: list[float]) -> dict:
    """Load balance of one run: each rank's causal work in query x key pairs and its time."""
    mean_pairs, mean_s = sum(pairs) / len(pairs), sum(seconds) / len(seconds)
    return {
        "pairs_per_rank": pairs,
        "pairs_max_over_mean": max(pairs) / mean_pairs,
        "pairs_min_over_mean": min(pairs) / mean_pairs,
        "seconds_per_rank": [round(s, 4) for s in seconds],
        "time_max_over_mean": max(seconds) / mean_s,
        "time_min_over_mean": min(seconds) / mean_s,
    }


def lasp2_table(
    lengths=(1024, 4096, 16384), size: int = 4, heads: int = 2, head_dim: int = 64, progress=None
) -> list[dict]:
    """LASP-2's counted payload bytes per rank (forward + backward) at growing sequence length."""
    jobs = [
        {
            "method": "lasp2",
            "attention": "linear",
            "batch": 1,
            "length": n,
            "heads": heads,
            "kv_heads": heads,
            "head_dim": head_dim,
        }
        for n in lengths
    ]
    if progress:
        progress(f"counting LASP-2 payload at L = {', '.join(map(str, lengths))} on {size} gloo processes")
    per_rank = measure(size, jobs)
    return [
        {
            "L": job["length"],
            "P": size,
            "heads": heads,
            "head_dim": head_dim,
            "counted_payload_bytes_per_rank": max(per_rank[r][j]["bytes"] for r in range(size)),
            "formula": formula_bytes("lasp2", size, 1, job["length"], heads, heads, head_dim),
        }
        for j, job in enumerate(jobs)
    ]


def checkpoint_table() -> list[dict]:
    """Attention forwards in one training step of a 2-layer attention stack, by checkpointing mode."""
    from seqverse.core import parallel
    from seqverse.core.backbones import build
    from seqverse.core.parallel.checkpoint import full_block_checkpoint_forward

    rows, grads = [], {}
    for mode in ("none", "full block", "remat-aware"):
        torch.manual_seed(0)
        model = parallel.parallelize(build("attention", 64, 2, n_heads=4), "ring")
        if mode == "remat-aware":
            parallel.checkpoint_blocks(model)
        x = torch.randn(2, 128, 64, generator=torch.Generator().manual_seed(1))
        before = parallel.attention_forwards()
        y = full_block_checkpoint_forward(model, x) if mode == "full block" else model(x)
        y.square().sum().backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
        rows.append(
            {
                "checkpointing": mode,
                "layers": 2,
                "attention_forwards_per_step": parallel.attention_forwards() - before,
                "max_grad_diff_vs_none": float((grads[mode] - grads["none"]).abs().max()),
            }
        )
    return rows


def planner_table(
    n_devices: int = 16,
    capacity: int = 16384,
    n_seq: int = 32,
    max_len: int = 131072,
    seeds=(1, 2, 3, 4),
    time_limit: float = 10.0,
    progress=None,
) -> list[dict]:
    """FlexSP planner against static SP on long-tailed batches (modelled step time, Llama-7B-like),
    one row per batch and their total (a training run is a stream of such batches)."""
    from seqverse.core.parallel.planner import CostModel, long_tailed_lengths, plan

    rows = []
    for seed in seeds:
        lengths = long_tailed_lengths(n_seq, max_len, seed, min_len=512)
        if progress:
            progress(
                f"planning batch {seed}: {n_seq} sequences, {sum(lengths)} tokens on {n_devices} devices"
            )
        result = plan(lengths, n_devices, capacity, CostModel(), time_limit=time_limit)
        rows.append(
            {
                "batch": seed,
                "sequences": n_seq,
                "tokens": sum(lengths),
                "longest": max(lengths),
                "devices": n_devices,
                "static_sp_s": result.static_time,
                "planner_s": result.step_time,
                "speedup": result.speedup,
                "groups": "+".join(str(len(g)) for g in result.groups),
                "solver": result.status,
            }
        )
    static, planned = sum(r["static_sp_s"] for r in rows), sum(r["planner_s"] for r in rows)
    rows.append(
        {
            "batch": "total",
            "sequences": n_seq * len(seeds),
            "tokens": sum(r["tokens"] for r in rows),
            "longest": max(r["longest"] for r in rows),
            "devices": n_devices,
            "static_sp_s": static,
            "planner_s": planned,
            "speedup": static / planned,
            "groups": "",
            "solver": "",
        }
    )
    return rows


def run(
    sizes=(2, 4, 8), length: int = 1024, planner: bool = True, time_limit: float = 10.0, progress=None
) -> dict:
    """All tables of ``seqverse bench parallel`` as a dict of lists of rows."""
    comm_rows, balance_rows = communication_table(sizes, length, progress=progress)
    result = {
        "communication": comm_rows,
        "balance": balance_rows,
        "lasp2_bytes": lasp2_table(progress=progress),
        "checkpoint": checkpoint_table(),
    }
    if planner:
        result["planner"] = planner_table(time_limit=time_limit, progress=progress)
    return result


def add_parser(subparsers) -> None:
    """Register ``parallel`` on the ``seqverse bench`` sub-command parsers."""
    p = subparsers.add_parser(
        "parallel",
        help="sequence-parallel counted communication payload, load balance, LASP-2 and planner tables",
        description=__doc__.splitlines()[0],
    )
    from seqverse.core import clikit

    p.add_argument("--sizes", type=clikit.int_list(2, MAX_PROCESSES), default=[2, 4, 8],
                   help="gloo process counts P to run, each dividing the 32 heads (default 2,4,8)")
    p.add_argument("--seq-len", type=clikit.int_range(2, 2**17), default=1024,
                   help="sequence length of the runs; divisible by 2P for every P (default 1024)")
    p.add_argument(
        "--no-planner", action="store_true", help="skip the planner table (about 30 s of MILP solving)"
    )
    p.add_argument("--time-limit", type=clikit.positive_float, default=10.0,
                   help="MILP time limit per batch, seconds (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_command)


def _command(args) -> None:
    from seqverse.core import clikit

    sizes = tuple(args.sizes)
    bad = [s for s in sizes if LLAMA["heads"] % s]
    if bad:
        raise clikit.InputError(f"--sizes: P={bad[0]} does not divide the {LLAMA['heads']} attention heads "
                                f"(use 2, 4, 8, 16 or 32)")
    if any(args.seq_len % (2 * s) for s in sizes):
        raise clikit.InputError(f"--seq-len {args.seq_len} must divide by 2P for every P in --sizes "
                                f"(2P = {', '.join(str(2 * s) for s in sizes)})")
    result = run(
        sizes,
        args.seq_len,
        not args.no_planner,
        args.time_limit,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, rows in result.items():
        print(f"\n{name}")
        clikit.print_table(rows)
