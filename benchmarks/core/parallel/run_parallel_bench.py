"""Write the sequence-parallel tables (communication, balance, LASP-2 bytes, checkpointing, planner).

    .venv/bin/python benchmarks/core/parallel/run_parallel_bench.py     # ~2 minutes on 2 CPU cores

Same numbers as ``seqverse bench parallel``; writes ``results/parallel.json`` and
``results/parallel.md`` beside this script.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqverse.core.parallel import bench

HERE = Path(__file__).resolve().parent


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    result = bench.run(progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "parallel.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n\n".join(f"### {name}\n\n{markdown(rows)}" for name, rows in result.items())
    (out / "parallel.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
