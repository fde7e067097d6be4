"""Round 6 (issue 23): mean-landing against refined pixels for the same `mbr_land_mm` scanpaths, on each fold's
VALIDATION collages, pooled.

Protocol (packages/vision/README.md, "Human data, round 6", written before these numbers): every fold's model
decodes its own 10 validation collages with `mbr_land_mm` (T 1.0, 64 draws, seed 0, as round 5) and the same
object scanpath is scored at the landing model's mean pixels and at pixels refined by `oat/refine.py` (pseudo-
people from the other draws). `choose` pools the 7 folds (70 collage evaluations) and takes the refined pixels only
if their pooled MultiMatch is higher and they are ahead on more than half of the collages; no test collage is read.

    python benchmarks/vision/oat/crossval_pixels.py valid 0 --oat runs/oat/human_fold0/best   # each fold
    python benchmarks/vision/oat/crossval_pixels.py choose      # -> results/human_crossval_round6/choice.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from crossval_human import (
    RESULTS,
    load_fold,
    multimatch_gain,
    per_collage,
    pooled_means,
    validation_main,
    validation_rows,
    write_choice,
)

from seqverse.vision.oat.baselines import baseline_scanpaths
from seqverse.vision.oat.decode import decode
from seqverse.vision.oat.refine import PASSES, STEP, refined_scanpaths

OUT = RESULTS / "human_crossval_round6"
DECODING, TEMPERATURE, DRAWS = "mbr_land_mm", 1.0, 64
SYSTEMS = ("landing pixels", "refined pixels", "reading order")
METRICS = ("sequence_score", "multimatch", "mm_vector", "mm_direction", "mm_length", "mm_position")


def valid(args) -> None:
    model, landing, displays = load_fold(args, "valid")
    start = time.time()
    drawn: list = []
    paths = decode(model, displays, DECODING, n=DRAWS, temperature=TEMPERATURE, seed=0, landing=landing,
                   draws_out=drawn)
    refined = refined_scanpaths(displays, paths, drawn, landing, seed=0)
    reading = baseline_scanpaths("reading", displays, max_len=model.config.max_len)
    collages = []
    for k, d in enumerate(displays):
        scores = {"landing pixels": per_collage(d, paths[k], landing),
                  "refined pixels": per_collage(d, paths[k], landing, xy=refined[k]),
                  "reading order": per_collage(d, reading[k])}
        collages.append({"collage": d.name, "scores": scores})
        print(f"fold {args.fold} {d.name}: " + ", ".join(f"{s} {v['multimatch']:.4f}" for s, v in scores.items()),
              flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    out = {"fold": args.fold, "set": "validation", "model": str(Path(args.oat)), "decoding": DECODING,
           "refinement": {"step": STEP, "passes": PASSES}, "seconds": round(time.time() - start, 1),
           "collages": collages}
    (OUT / f"valid_fold{args.fold}.json").write_text(json.dumps(out, indent=1) + "\n")


def choose(args) -> None:
    rows = validation_rows(OUT)
    pooled = pooled_means(rows, SYSTEMS, METRICS)
    gain, ahead = multimatch_gain(rows, "refined pixels", "landing pixels")
    take = bool(gain.mean() > 0 and ahead > len(rows) / 2)
    out = {"command": "python benchmarks/vision/oat/crossval_pixels.py choose", "set": "validation",
           "collage_evaluations": len(rows), "pooled": pooled,
           "refined_minus_landing_multimatch": float(gain.mean()), "collages_refined_ahead": ahead,
           "rule": "refined pixels if their pooled validation MultiMatch is above the landing pixels' and they are "
                   "ahead on more than half of the collages; else round 5 stands (no test read)",
           "chosen": {"decoding": DECODING, "temperature": TEMPERATURE, "samples": DRAWS,
                      "pixels": "refined" if take else "landing"}}
    write_choice(OUT, out)


if __name__ == "__main__":
    validation_main(__doc__, valid, choose, "decode one fold's validation collages; score landing and refined pixels")
