"""Round 6 (packages/genomics/README.md): conditional generation reranked by the model's own classifier.

    # selection run (seed 1): every candidate, the rule applied
    python benchmarks/genomics/prollama/rerank_generation.py --seed 1 -o benchmarks/genomics/prollama/rerank_round6_seed1.json
    # the chosen candidate beside `paper`, once, at seed 0
    python benchmarks/genomics/prollama/rerank_generation.py --seed 0 --only paper,CHOSEN \
        -o benchmarks/genomics/prollama/rerank_round6_seed0.json

Each candidate generates 20 sequences for Pkinase, fn3, RRM_1 and SMC_N with the model as shipped (the paper's
top-k 40, top-p 0.9, repetition penalty 1.2) and is judged by hmmsearch (E <= 1e-5) against each family's profile
and by its median identity to the nearest training member (evaluate.generation_metrics, as every round).
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import torch

from seqverse.genomics.prollama import data as pdata
from seqverse.genomics.prollama.evaluate import generation_metrics
from seqverse.genomics.prollama.tasks import Decoding, ProLLaMA

FAMILIES = ("Pkinase", "fn3", "RRM_1", "SMC_N")
CANDIDATES = {"paper": (0.2, None), "rerank-0.2": (0.2, 100), "rerank-0.7": (0.7, 100), "rerank-1.0": (1.0, 100)}
KEEP, NOVELTY = 20, 0.9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="merged model directory (default: the embedded one)")
    ap.add_argument("--data-dir", default="runs/prollama/data")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated candidates")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = ProLLaMA.from_dir(args.model)
    data_dir = Path(args.data_dir)
    members = collections.defaultdict(list)
    for _, s, f in pdata.labelled_examples(data_dir)["train"]:
        members[f].append(s)
    rows = {}
    for name in args.only.split(","):
        temperature, pool = CANDIDATES[name]
        began = time.time()
        rows[name] = {"temperature": temperature, "pool": pool, "families": {}}
        for fam in FAMILIES:
            seqs = model.generate(KEEP, fam, seed=args.seed, decoding=Decoding(temperature=temperature), rerank=pool)
            rows[name]["families"][fam] = generation_metrics(seqs, fam, data_dir / "superfamilies.hmm", members[fam])
        fams = rows[name]["families"].values()
        rows[name]["mean_hit_rate"] = sum(m["hit_rate"] for m in fams) / len(FAMILIES)
        rows[name]["eligible"] = all(m["median_nearest_identity"] < NOVELTY for m in fams)
        rows[name]["seconds"] = round(time.time() - began)
        print(name, json.dumps({f: (m["hit_rate"], m["median_nearest_identity"]) for f, m in rows[name]["families"].items()}),
              round(rows[name]["mean_hit_rate"], 3), "eligible" if rows[name]["eligible"] else "NOT eligible", flush=True)
    order = list(rows)
    eligible = [c for c in order if rows[c]["eligible"]]
    chosen = max(eligible, key=lambda c: (rows[c]["mean_hit_rate"], -order.index(c))) if eligible else None
    out = {"model": args.model or "embedded", "seed": args.seed, "kept": KEEP, "candidates": rows,
           "rule": "eligible: every family's median nearest identity < 0.9; highest mean hit rate; ties: earlier",
           "chosen": chosen}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("chosen:", chosen)


if __name__ == "__main__":
    main()
