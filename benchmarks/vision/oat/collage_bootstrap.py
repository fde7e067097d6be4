"""How much of a MultiMatch difference on the human VALIDATION collages is noise: a paired bootstrap over
collages (the unit of the split) of one OAT decoding against a baseline. Test is not read.

    python benchmarks/vision/oat/collage_bootstrap.py --oat runs/s38/human_s0/best --decoding mbr:0.7:100 \
        --landing --baseline reading

Per collage: the mean over its people of the official MultiMatch (and sequence score) of the OAT scanpath,
minus the same for the baseline; then the mean difference with a 95% percentile interval from 10,000
resamples of the 10 collages. Prints JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from crossval_human import bootstrap  # this folder: the same paired resampling

from seqverse.vision.oat.baselines import baseline_scanpaths
from seqverse.vision.oat.decode import decode
from seqverse.vision.oat.human import load_human
from seqverse.vision.oat.landing import Landing
from seqverse.vision.oat.predict import load_model, model_dirs, score_scanpaths


def per_collage(displays, paths, landing=None) -> np.ndarray:
    """(collages, 2): sequence score and MultiMatch of one scanpath per collage, averaged over its people."""
    return np.array([[r["sequence_score"], r["multimatch"]] for r in
                     (score_scanpaths([d], [[p]], landing=landing) for d, p in zip(displays, paths))])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oat", required=True, help="checkpoint, or several joined by commas")
    ap.add_argument("--decoding", default="mbr:0.7:100", metavar="RULE:T:N", help="OAT's decoding")
    ap.add_argument("--landing", action="store_true", help="OAT's fixations at the landing model's pixels")
    ap.add_argument("--baseline", default="reading", choices=("reading", "centre", "random"))
    ap.add_argument("--resamples", type=int, default=10_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    displays = load_human()["valid"]
    model = load_model(args.oat)
    landing = Landing.load(model_dirs(args.oat)[0]) if args.landing else None
    rule, temp, n = args.decoding.split(":")
    oat = per_collage(displays, decode(model, displays, rule, n=int(n), temperature=float(temp), seed=0,
                                       landing=landing), landing)
    base = per_collage(displays, baseline_scanpaths(args.baseline, displays, max_len=model.config.max_len))
    diff = oat - base
    out = {"set": "validation", "collages": len(displays), "oat": args.oat, "decoding": args.decoding,
           "landing": args.landing, "baseline": args.baseline}
    for k, name in enumerate(("sequence_score", "multimatch")):
        lo, hi = bootstrap(diff[:, k], args.resamples)
        out[name] = {"oat": float(oat[:, k].mean()), "baseline": float(base[:, k].mean()),
                     "difference": float(diff[:, k].mean()), "ci95": [float(lo), float(hi)],
                     "collages_oat_ahead": int((diff[:, k] > 0).sum())}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
