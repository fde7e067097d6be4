"""Round 5 (issue 23): choose between `mbr_land` and `mbr_land_mm` on each fold's VALIDATION collages, pooled.

Protocol (packages/vision/README.md, "Human data, round 5", written before any of these numbers): every fold's
model decodes its own 10 validation collages with both rules (T 1.0, 64 draws, seed 0, landing pixels), scored
against the people beside reading order. `choose` pools the 7 folds (70 collage evaluations) and takes
`mbr_land_mm` only if its pooled validation MultiMatch is above `mbr_land`'s and its pooled validation sequence
score stays above reading order's by at least half of `mbr_land`'s margin; no test collage is read here.

    python benchmarks/vision/oat/crossval_decoding.py valid 0 --oat runs/oat/human_fold0/best   # each fold
    python benchmarks/vision/oat/crossval_decoding.py choose      # -> results/human_crossval_round5/choice.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from crossval_human import (
    RESULTS,
    load_fold,
    per_collage,
    pooled_means,
    validation_main,
    validation_rows,
    write_choice,
)

from seqverse.vision.oat.baselines import baseline_scanpaths
from seqverse.vision.oat.decode import decode

OUT = RESULTS / "human_crossval_round5"
RULES = ("mbr_land", "mbr_land_mm")
TEMPERATURE, DRAWS = 1.0, 64
READING = "reading order"


def valid(args) -> None:
    model, landing, displays = load_fold(args, "valid")
    start = time.time()
    paths = {rule: decode(model, displays, rule, n=DRAWS, temperature=TEMPERATURE, seed=0, landing=landing)
             for rule in RULES}
    paths[READING] = baseline_scanpaths("reading", displays, max_len=model.config.max_len)
    collages = [{"collage": d.name,
                 "scores": {s: per_collage(d, paths[s][k], landing if s in RULES else None) for s in paths}}
                for k, d in enumerate(displays)]
    OUT.mkdir(parents=True, exist_ok=True)
    out = {"fold": args.fold, "set": "validation", "model": str(Path(args.oat)), "seconds": round(time.time() - start, 1),
           "collages": collages}
    (OUT / f"valid_fold{args.fold}.json").write_text(json.dumps(out, indent=1) + "\n")
    means = {s: {m: float(np.mean([c["scores"][s][m] for c in collages])) for m in ("sequence_score", "multimatch")}
             for s in paths}
    print(json.dumps({"fold": args.fold, "validation": means}, indent=1))


def choose(args) -> None:
    rows = validation_rows(OUT)
    pooled = pooled_means(rows, RULES + (READING,), ("sequence_score", "multimatch"))
    land, land_mm, reading = pooled["mbr_land"], pooled["mbr_land_mm"], pooled[READING]
    margin_needed = 0.5 * (land["sequence_score"] - reading["sequence_score"])
    take = (land_mm["multimatch"] > land["multimatch"]
            and land_mm["sequence_score"] - reading["sequence_score"] >= margin_needed)
    rule = "mbr_land_mm" if take else "mbr_land"
    out = {"command": "python benchmarks/vision/oat/crossval_decoding.py choose", "set": "validation",
           "collage_evaluations": len(rows), "pooled": pooled, "sequence_margin_needed": margin_needed,
           "rule": "mbr_land_mm if its pooled validation MultiMatch > mbr_land's and its sequence score exceeds "
                   "reading order's by >= half of mbr_land's margin; else mbr_land (round 4 stands, no test read)",
           "chosen": {"decoding": rule, "temperature": TEMPERATURE, "samples": DRAWS, "pixels": "landing"}}
    write_choice(OUT, out)


if __name__ == "__main__":
    validation_main(__doc__, valid, choose, "decode and score one fold's validation collages with both rules")
