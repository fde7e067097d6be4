"""Round 7 probe (issue 23): which refinement settings to put into round 7's protocol, on folds 0 and 1's
VALIDATION collages only (as round 6's probe). No test collage is read.

Variants, all from the same 64 draws (T 1.0, seed 0) that round 6 decodes:
- r6: round 6 (mbr_land_mm objects; pixels refined against each other draw at one random landing, step 0.15, 2 passes)
- landL: the same objects; each other draw placed at L random landings (more pseudo-people, less landing noise)
- landL_fine: landL, then 2 more passes at step 0.05
- topK_landL_fine: the K draws with the highest mbr_land_mm utility each refined as landL_fine, then the one with
  the highest expected MultiMatch against a fresh, independent set of pseudo-people (L landings a draw) is kept

    python benchmarks/vision/oat/round7_probe.py probe 0 --oat runs/oat/human_fold0/best
"""

from __future__ import annotations

import json
import time

import numpy as np
from crossval_human import RESULTS, fold_commands, load_fold, per_collage

from seqverse.vision.oat.decode import decode, mbr_landing_gains
from seqverse.vision.oat.refine import (
    pseudo_people,
    refine_coarse_fine,
    refine_pixels,
    refined_landing_pixels,
    refined_top,
)

OUT = RESULTS / "human_crossval_round7" / "probe"


def refined(display, objects, evidence, landing, fine):
    start = landing.place(display, objects)
    return (refine_coarse_fine if fine else refine_pixels)(display, objects, start, evidence)


def probe(args) -> None:
    model, landing, displays = load_fold(args, "valid")
    drawn: list = []
    start = time.time()
    paths = decode(model, displays, "mbr_land_mm", n=64, temperature=1.0, seed=0, landing=landing, draws_out=drawn)
    rows = []
    for k, d in enumerate(displays):
        draws = drawn[k]
        gains = mbr_landing_gains(d, draws, landing, np.random.default_rng(k), sequence_weight=0.0)
        best = int(np.argmax(gains))
        assert list(draws[best]) == list(paths[k])
        scores = {}
        r6 = refined_landing_pixels(d, paths[k], draws, landing, np.random.default_rng((k, 1)))
        scores["r6"] = per_collage(d, paths[k], xy=np.round(r6, 1))
        for L in (4,):
            evL = pseudo_people(d, draws, best, landing, np.random.default_rng((k, 2)), L)
            scores[f"land{L}"] = per_collage(d, paths[k], xy=np.round(refined(d, paths[k], evL, landing, False), 1))
            scores[f"land{L}_fine"] = per_collage(d, paths[k], xy=np.round(refined(d, paths[k], evL, landing, True), 1))
            for K in (4, 8):   # the package's refined_top, with the same seeds
                objects, xy = refined_top(d, draws, landing, k, top=K, landings=L)
                scores[f"top{K}_land{L}_fine"] = per_collage(d, objects, xy=np.round(xy, 1))
        rows.append({"collage": d.name, "scores": scores})
        print(f"fold {args.fold} {d.name}: " + ", ".join(f"{s} {v['multimatch']:.4f}" for s, v in scores.items()),
              flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    out = {"fold": args.fold, "set": "validation", "seconds": round(time.time() - start, 1), "collages": rows}
    (OUT / f"probe_fold{args.fold}.json").write_text(json.dumps(out, indent=1) + "\n")
    for s in rows[0]["scores"]:
        print(s, {m: round(float(np.mean([r["scores"][s][m] for r in rows])), 4)
                  for m in ("sequence_score", "multimatch", "mm_direction", "mm_length")})


if __name__ == "__main__":
    ap, sub, add_fold_command = fold_commands(__doc__)
    add_fold_command("probe", "probe one fold's validation collages", probe)
    args = ap.parse_args()
    args.func(args)
