"""The core benchmark tables: synthetic tasks x backbones, speed per length, sequence parallelism.

    python benchmarks/core/run_all.py                    # everything (about 1.5 hours on 2 CPU cores)
    python benchmarks/core/run_all.py --only synthetic   # one part: synthetic, speed or parallel

Results go to ``benchmarks/core/results/`` as JSON (one file per part) and Markdown tables; the
core README shows the Markdown. A synthetic run already in ``synthetic.json`` with the same
settings is not run again, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seqverse.core.backbones import NAMES

RESULTS = Path(__file__).resolve().parent / "results"

# One setting per task, sized so that all 18 runs fit in about an hour on two CPU cores.
COMMON = {"d_model": 64, "n_layers": 2, "lr": 3e-3}
SYNTHETIC = {
    "mqar": {"task_options": {"seq_len": 64, "vocab_size": 128, "num_kv_pairs": 4}, "steps": 5000, "batch_size": 64},
    "selective-copy": {"task_options": {"seq_len": 64, "vocab_size": 16, "num_tokens": 8}, "steps": 2000, "batch_size": 32},
    "induction": {"task_options": {"seq_len": 64, "vocab_size": 16}, "steps": 1500, "batch_size": 32},
    # MQAR with token 0 between the queries (Zoology's random_non_queries=False): random gap tokens
    # pair up like key-value pairs, which a recurrent state must then store beside the real ones.
    "mqar-zero-gaps": {
        "task": "mqar",
        "task_options": {"seq_len": 64, "vocab_size": 128, "num_kv_pairs": 4, "random_non_queries": False},
        "steps": 3000,
        "batch_size": 64,
    },
}


def _configs() -> list[tuple[str, dict]]:
    """(table column, run config) for every task setting x backbone."""
    return [
        (column, {"task": column, "backbone": name, **COMMON, **setting})
        for column, setting in SYNTHETIC.items()
        for name in NAMES
    ]


def _run_one(config: dict) -> dict:
    """One synthetic run in a single-threaded child process (two run side by side on two cores)."""
    code = (
        "import json, sys, torch; torch.set_num_threads(1); "
        "from seqverse.core.bench.synthetic import SyntheticRun, run_synthetic; "
        "print(json.dumps(run_synthetic(SyntheticRun(**json.loads(sys.argv[1])), progress=False)))"
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(config)], capture_output=True, text=True)
    if done.returncode != 0:
        return {**config, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _key(config: dict) -> str:
    return json.dumps({k: config[k] for k in sorted(config)}, sort_keys=True)


def _load(path: Path) -> dict:
    return {r["key"]: r for r in json.loads(path.read_text())} if path.exists() else {}


def synthetic(jobs: int, tasks: list[str], backbones: list[str]) -> None:
    """Run what is missing from ``synthetic.json``; several invocations may run side by side."""
    path = RESULTS / "synthetic.json"
    done = _load(path)
    todo = [
        c for column, c in _configs()
        if column in tasks and c["backbone"] in backbones and "error" in done.get(_key(c), {"error": 1})
    ]
    print(f"synthetic: {len(todo)} runs to do", file=sys.stderr)

    def work(config):
        result = {**_run_one(config), "key": _key(config)}
        with open(RESULTS / ".synthetic.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # merge with what other invocations wrote meanwhile
            merged = {**_load(path), result["key"]: result}
            path.write_text(json.dumps(list(merged.values()), indent=1))
        print(f"  {config['task']:15s} {config['backbone']:10s} acc {result.get('test_accuracy', 'ERR')}",
              file=sys.stderr, flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(work, todo))
    done = _load(path)
    rows = {(column, c["backbone"]): done[_key(c)] for column, c in _configs() if _key(c) in done}
    (RESULTS / "synthetic.md").write_text(synthetic_markdown(rows))


def synthetic_markdown(rows: dict[tuple[str, str], dict]) -> str:
    """One column per task setting; ``rows`` maps (column, backbone) to a result."""
    tasks = list(SYNTHETIC)
    lines = ["| backbone | params | " + " | ".join(tasks) + " |", "|---|---:|" + "---:|" * len(tasks)]
    for name in NAMES:
        cells, params = [], ""
        for task in tasks:
            r = rows.get((task, name))
            if r is None or "error" in r:
                cells.append("error" if r else "not run")
                continue
            params = f"{r['params']:,}"
            cells.append(f"{100 * r['test_accuracy']:.1f}%")
        lines.append(f"| {name} | {params} | " + " | ".join(cells) + " |")
    settings = "; ".join(
        f"{t}: " + ", ".join(f"{k}={v}" for k, v in s["task_options"].items())
        + f", {s['steps']} steps of batch {s['batch_size']}"
        for t, s in SYNTHETIC.items()
    )
    common = ", ".join(f"{k}={v}" for k, v in COMMON.items())
    return "\n".join(lines) + f"\n\nTest accuracy at the answer positions (1000 held-out examples). {settings}; {common}.\n"


def speed() -> None:
    from seqverse.core.bench.speed import DEFAULT_LENGTHS, plot, run_speed

    # one thread: the same conditions for every backbone even if another job shares the machine
    rows = run_speed(list(NAMES), list(DEFAULT_LENGTHS), timeout=1200, threads=1)
    (RESULTS / "speed.json").write_text(json.dumps(rows, indent=1))
    plot(rows, str(RESULTS / "speed.png"))
    (RESULTS / "speed.md").write_text(speed_markdown(rows))


def speed_markdown(rows: list[dict]) -> str:
    lines = [
        "| backbone | L | fwd+bwd tokens/s | vs attention | peak memory MiB | step latency ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['backbone']} | {r['seq_len']} | {r['error']} | | | |")
            continue
        lines.append(
            f"| {r['backbone']} | {r['seq_len']} | {r['tokens_per_second']:,.0f} | "
            f"{r.get('speedup_vs_attention', float('nan')):.2f}x | {r['peak_memory_mb']:,.0f} | {r['step_latency_ms']:.2f} |"
        )
    r0 = rows[0]
    return "\n".join(lines) + (
        f"\n\n1 layer, d_model {r0['d_model']}, batch {r0['batch_size']}, {r0['device']}, "
        f"{r0.get('threads') or 'default'} thread(s); "
        "step latency is one recurrent step with L positions of context.\n"
    )


def parallel() -> None:
    """The sequence-parallel tables and the trainer match (they write to parallel/results/)."""
    here = Path(__file__).resolve().parent / "parallel"
    for script in ("run_parallel_bench.py", "train_match.py"):
        subprocess.run([sys.executable, str(here / script)], check=True)


README = Path(__file__).resolve().parents[2] / "packages" / "core" / "README.md"


def update_readme() -> None:
    """Put each results/<part>.md between its ``<!-- part -->`` and ``<!-- /part -->`` markers."""
    text = README.read_text()
    for part in ("synthetic", "speed"):
        table = RESULTS / f"{part}.md"
        start, end = f"<!-- {part} -->", f"<!-- /{part} -->"
        if table.exists() and start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + start + "\n" + table.read_text() + end + rest.split(end, 1)[1]
    README.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["synthetic", "speed", "parallel"], action="append")
    parser.add_argument("--jobs", type=int, default=2, help="synthetic runs side by side (default 2)")
    parser.add_argument("--task", action="append", choices=list(SYNTHETIC), help="synthetic: only these tasks")
    parser.add_argument("--backbone", action="append", choices=NAMES, help="synthetic: only these backbones")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    parts = args.only or ["synthetic", "speed", "parallel"]
    if "synthetic" in parts:
        synthetic(args.jobs, args.task or list(SYNTHETIC), args.backbone or list(NAMES))
    if "speed" in parts:
        speed()
    if "parallel" in parts:
        parallel()
    update_readme()


if __name__ == "__main__":
    main()
