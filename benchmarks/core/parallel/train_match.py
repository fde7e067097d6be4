"""The trainer's loss curve at P = 4 (torchrun, gloo) against one process: same seed, same data.

    .venv/bin/python benchmarks/core/parallel/train_match.py      # ~3 minutes on 2 CPU cores

Runs, for each method, exactly the documented command
``torchrun --nproc-per-node 4 -m seqverse.core.train --sequence-parallel METHOD --steps 20``
and once ``python -m seqverse.core.train --steps 20`` (plain SDPA attention), then writes
``results/train_match.json`` and ``.md`` with the largest loss difference over the 20 steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def run(command: list[str], out: Path) -> list[float]:
    subprocess.run([*command, "--steps", "20", "--out", str(out)], check=True)
    return json.loads(out.read_text())["losses"]


def main() -> None:
    rows, curves = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        single = run([sys.executable, "-m", "seqverse.core.train"], Path(tmp) / "single.json")
        curves["single process"] = single
        for method in ("ring", "lightseq", "ulysses"):
            losses = run(
                [
                    str(BIN / "torchrun"),
                    "--nproc-per-node",
                    "4",
                    "-m",
                    "seqverse.core.train",
                    "--sequence-parallel",
                    method,
                ],
                Path(tmp) / f"{method}.json",
            )
            curves[f"{method} P=4"] = losses
            rows.append(
                {
                    "method": method,
                    "P": 4,
                    "steps": len(losses),
                    "first_loss": losses[0],
                    "last_loss": losses[-1],
                    "max_abs_diff_vs_single": max(abs(a - b) for a, b in zip(losses, single, strict=True)),
                }
            )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "train_match.json").write_text(json.dumps({"rows": rows, "curves": curves}, indent=2) + "\n")
    lines = [
        "| method | P | steps | first loss | last loss | max abs diff vs 1 process |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | 4 | {r['steps']} | {r['first_loss']:.4f} | {r['last_loss']:.4f} | "
        f"{r['max_abs_diff_vs_single']:.2e} |"
        for r in rows
    ]
    lines += ["", "| step | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    lines += [
        f"| {s} | " + " | ".join(f"{c[s]:.6f}" for c in curves.values()) + " |" for s in range(len(single))
    ]
    (out / "train_match.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
