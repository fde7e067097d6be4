"""Forward+backward time and peak memory vs sequence length: HyenaDNA vs attention of the same width.

Each (model, L) runs in its own subprocess, so its peak resident memory (``ru_maxrss``) is its own;
the table reports the peak minus the process's memory just before the run. Models: the tiny-1k
layout (d_model 128, 2 layers, d_inner 512, emb_dim 5, l_max = L) with Hyena or with 4-head causal
attention (PyTorch SDPA) as the mixer; batch 1; one CPU thread each. Attention lengths whose
projected time (quadratic from the longest measured length) exceeds ``--max-seconds`` are not run
and are reported as projections. At 1M tokens HyenaDNA runs a forward pass (no gradients).

    nice -n 5 .venv/bin/python benchmarks/genomics/hyenadna/speed_bench.py --out benchmarks/genomics/hyenadna/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

LENGTHS = [1024, 4096, 16384, 65536, 262144, 1048576]

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(1)
from seqverse.genomics.hyenadna.model import HyenaDNAConfig, HyenaDNAForCausalLM
mixer, L, backward = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
torch.manual_seed(0)
model = HyenaDNAForCausalLM(HyenaDNAConfig(d_model=128, n_layer=2, d_inner=512, max_seq_len=max(L, 2), emb_dim=5, embed_dropout=0.0, mixer=mixer))
x = torch.randint(7, 11, (1, L))
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def run():
    if backward:
        model.loss(x[:, :-1], x[:, 1:]).backward()
    else:
        with torch.no_grad():
            model(x)
base = rss()
repeats = 3 if L <= 16384 else 1
times = []
for _ in range(repeats):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    model.zero_grad(set_to_none=True)
print(json.dumps({"seconds": min(times), "peak_mb": rss() - base}))
"""


def measure(mixer: str, L: int, backward: bool, timeout: float) -> dict:
    try:
        r = subprocess.run([sys.executable, "-c", CHILD, mixer, str(L), "1" if backward else "0"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {timeout:.0f}s"}
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["killed"])[-1]
        return {"status": "out of memory" if r.returncode in (-9, 137) or "memory" in last.lower() else f"failed: {last[:120]}"}
    return json.loads(r.stdout.strip().splitlines()[-1]) | {"status": "ok"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/genomics/hyenadna/results")
    ap.add_argument("--max-seconds", type=float, default=1500.0, help="skip attention lengths projected to take longer")
    ap.add_argument("--table-only", action="store_true", help="rewrite speed.md from speed.json")
    args = ap.parse_args()
    if args.table_only:
        write_table(json.loads((Path(args.out) / "speed.json").read_text()), Path(args.out))
        return
    rows = []
    attn_last = None
    for L in LENGTHS:
        row = {"L": L}
        hy = measure("hyena", L, backward=L < 1048576, timeout=1200)
        row["hyena_pass"] = "fwd+bwd" if L < 1048576 else "fwd"
        row["hyena_s"], row["hyena_peak_mb"], row["hyena_status"] = hy.get("seconds"), hy.get("peak_mb"), hy["status"]
        projected = attn_last[1] * (L / attn_last[0]) ** 2 if attn_last else 0.0
        if projected > args.max_seconds:
            row["attention_s"], row["attention_status"] = None, f"not run: projected {projected:,.0f}s"
            row["attention_projected_s"] = projected
        else:
            at = measure("attention", L, backward=True, timeout=max(1200, 3 * projected))
            row["attention_s"], row["attention_peak_mb"], row["attention_status"] = at.get("seconds"), at.get("peak_mb"), at["status"]
            if at["status"] == "ok":
                attn_last = (L, at["seconds"])
        a = row.get("attention_s") or row.get("attention_projected_s")
        if row["hyena_s"] and a and row["hyena_pass"] == "fwd+bwd":
            row["speedup"] = a / row["hyena_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(rows, indent=2) + "\n")
    write_table(rows, out)


def write_table(rows: list[dict], out: Path) -> None:
    """speed.md from the rows (attention times past the budget are quadratic projections, marked so)."""
    lines = ["| L | HyenaDNA pass | HyenaDNA s | HyenaDNA peak MB | attention fwd+bwd s | attention peak MB | attention / HyenaDNA |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        hy = f"{r['hyena_s']:.3g} | {r['hyena_peak_mb']:.0f}" if r.get("hyena_s") else f"{r['hyena_status']} | "
        if r.get("attention_s"):
            at = f"{r['attention_s']:.3g} | {r['attention_peak_mb']:.0f}"
        elif r.get("attention_projected_s"):
            at = f"not run (projected {r['attention_projected_s']:,.0f}) | "
        else:
            at = f"{r.get('attention_status', '')} | "
        ratio = f"{r['speedup']:.1f}x" + (" (projected)" if not r.get("attention_s") else "") if r.get("speedup") else ""
        lines.append(f"| {r['L']:,} | {r['hyena_pass']} | {hy} | {at} | {ratio} |")
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
