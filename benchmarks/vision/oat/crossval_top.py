"""Round 7 (issue 23): round 6's refined pixels against `refined_top` (the best refined of the top 8 draws), on each
fold's VALIDATION collages, pooled.

Protocol (packages/vision/README.md, "Human data, round 7", written before these numbers): every fold's model
draws 64 scanpaths for each of its 10 validation collages (mbr_land_mm's draws: T 1.0, seed 0); round 6's system
(the mbr_land_mm choice at refined pixels) and round 7's (`oat/refine.py`'s `refined_top`) are scored against the
people beside reading order. `choose` pools the 7 folds (70 collage evaluations) and takes `refined_top` only if
its pooled MultiMatch is higher than round 6's, it is ahead on more than half of the collages, and its pooled
sequence score is still above reading order's by at least half of round 5's validation margin; no test collage is
read.

    python benchmarks/vision/oat/crossval_top.py valid 0 --oat runs/oat/human_fold0/best   # each fold
    python benchmarks/vision/oat/crossval_top.py choose      # -> results/human_crossval_round7/choice.json
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
from crossval_pixels import DECODING, DRAWS, METRICS, TEMPERATURE  # round 6's decoding and measures

from seqverse.vision.oat.baselines import baseline_scanpaths
from seqverse.vision.oat.decode import decode
from seqverse.vision.oat.refine import FINE_STEP, LANDINGS, TOP, refined_scanpaths, refined_top_scanpaths

OUT = RESULTS / "human_crossval_round7"
SYSTEMS = ("round 6 (refined)", "round 7 (refined_top)", "reading order")
ROUND5_MARGIN = 0.160 - 0.084   # round 5's pooled validation sequence score minus reading order's


def valid(args) -> None:
    model, landing, displays = load_fold(args, "valid")
    start = time.time()
    drawn: list = []
    paths = decode(model, displays, DECODING, n=DRAWS, temperature=TEMPERATURE, seed=0, landing=landing,
                   draws_out=drawn)
    refined = refined_scanpaths(displays, paths, drawn, landing, seed=0)
    top_paths, top_pixels = refined_top_scanpaths(displays, drawn, landing, seed=0)
    reading = baseline_scanpaths("reading", displays, max_len=model.config.max_len)
    collages = []
    for k, d in enumerate(displays):
        scores = {"round 6 (refined)": per_collage(d, paths[k], xy=refined[k]),
                  "round 7 (refined_top)": per_collage(d, top_paths[k], xy=top_pixels[k]),
                  "reading order": per_collage(d, reading[k])}
        collages.append({"collage": d.name, "scores": scores, "round7_objects": top_paths[k]})
        print(f"fold {args.fold} {d.name}: " + ", ".join(f"{s} {v['multimatch']:.4f}" for s, v in scores.items()),
              flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    out = {"fold": args.fold, "set": "validation", "model": str(Path(args.oat)), "decoding": DECODING,
           "refined_top": {"top": TOP, "landings": LANDINGS, "fine_step": FINE_STEP},
           "seconds": round(time.time() - start, 1), "collages": collages}
    (OUT / f"valid_fold{args.fold}.json").write_text(json.dumps(out, indent=1) + "\n")


def choose(args) -> None:
    rows = validation_rows(OUT)
    pooled = pooled_means(rows, SYSTEMS, METRICS)
    gain, ahead = multimatch_gain(rows, "round 7 (refined_top)", "round 6 (refined)")
    margin = pooled["round 7 (refined_top)"]["sequence_score"] - pooled["reading order"]["sequence_score"]
    take = bool(gain.mean() > 0 and ahead > len(rows) / 2 and margin >= ROUND5_MARGIN / 2)
    out = {"command": "python benchmarks/vision/oat/crossval_top.py choose", "set": "validation",
           "collage_evaluations": len(rows), "pooled": pooled,
           "refined_top_minus_refined_multimatch": float(gain.mean()), "collages_refined_top_ahead": ahead,
           "refined_top_sequence_margin_over_reading": margin,
           "rule": "refined_top if its pooled validation MultiMatch is above round 6's refined pixels', it is ahead on "
                   "more than half of the collages and its sequence score is above reading order's by at least half "
                   "of round 5's validation margin (0.038); else round 6 stands (no test read)",
           "chosen": {"decoding": DECODING, "temperature": TEMPERATURE, "samples": DRAWS,
                      "pixels": "refined_top" if take else "refined"}}
    write_choice(OUT, out)


if __name__ == "__main__":
    validation_main(__doc__, valid, choose,
                    "decode one fold's validation collages; score round 6's refined pixels and refined_top")
