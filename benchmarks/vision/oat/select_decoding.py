"""Pick OAT's decoding rule on VALIDATION displays only (the test sets are not read here).

    python benchmarks/vision/oat/select_decoding.py human      # validation collages (human.py's split)
    python benchmarks/vision/oat/select_decoding.py synthetic  # runs/oat/synth2/valid.json (identical to runs/oat/synth/valid.json)

Candidates (seqverse.vision.oat.decode): greedy; "sampled" = every one of n draws scored (the
official test_expect mean); mbr at temperatures 0.7 and 1.0; likelihood at 1.0; on the human set
also mbr_mm (utility: mean of sequence score and MultiMatch) over 16 draws (MultiMatch is slow).
Each is one decoding for the whole set (no mixing of rules across metrics).

With ``--landing`` (human set; the checkpoint holds ``landing.json``, seqverse.vision.oat.landing) every
candidate is also scored with its fixations at the landing model's pixels instead of object centres,
and mbr_land (16 and 64 draws) joins; the rule below then runs over the union (each row says its
pixels), and the result goes to results/decoding_human_landing.json. Written before that run
(2026-12-05): the human benchmark uses the landing model only if this union's choice is a landing row.

Rule, fixed before the runs: rank the candidates on each of the issue's two acceptance metrics
(human: sequence score and MultiMatch; synthetic: sequence score and behavioural delta), keep the
lowest sum of ranks, ties to the higher sequence score. Writes results/decoding_<which>.json, which
bench_oat.py reads for its "chosen on validation" row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seqverse.vision.oat.decode import decode
from seqverse.vision.oat.displays import load_displays
from seqverse.vision.oat.landing import Landing
from seqverse.vision.oat.predict import load_model, model_dirs, score_scanpaths
from seqverse.vision.oat.train import predict_objects

RESULTS = Path(__file__).resolve().parent / "results"
CANDIDATES = (("greedy", 1.0, None), ("sampled", 1.0, None), ("mbr", 0.7, None), ("mbr", 1.0, None),
              ("likelihood", 1.0, None), ("mbr_mm", 1.0, 16))  # (rule, temperature, draws if not --samples)
LANDING_ONLY = (("mbr_land", 1.0, 16), ("mbr_land", 1.0, 64))
METRICS = {"human": (("sequence_score", "max"), ("multimatch", "max")),
           "synthetic": (("sequence_score", "max"), ("behavioural_delta", "min"))}


def evaluate(model, displays, rule: str, temperature: float, n: int, multimatch_too: bool, landing=None) -> dict:
    if rule == "sampled":
        draws = [predict_objects(model, [d], sample=True, n=n, seed=k, temperature=temperature)[0]
                 for k, d in enumerate(displays)]
        row = score_scanpaths(displays, draws, multimatch_too=False)
        if multimatch_too:  # MultiMatch of the first 10 draws (alignment is slow), as bench_oat.py
            row["multimatch"] = score_scanpaths(displays, [x[:10] for x in draws], landing=landing)["multimatch"]
        return row
    paths = decode(model, displays, rule, n=n, temperature=temperature, seed=0, landing=landing)
    return score_scanpaths(displays, [[p] for p in paths], multimatch_too=multimatch_too, landing=landing)


def choose(rows: list[dict], metrics) -> int:
    """Index of the lowest sum of ranks over ``metrics`` (ties: higher sequence score)."""
    ranks = np.zeros(len(rows))
    for name, mode in metrics:
        vals = np.array([r[name] for r in rows]) * (-1 if mode == "max" else 1)
        ranks += np.argsort(np.argsort(vals, kind="stable"), kind="stable")
    return min(range(len(rows)), key=lambda i: (ranks[i], -rows[i]["sequence_score"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("human", "synthetic"), help="data set")
    parser.add_argument("--oat", default=None, help="checkpoint (default runs/oat/{human_oat,synth_oat_big}/best), or "
                        "several joined by commas (an ensemble: the mixture of their distributions)")
    parser.add_argument("--synth", default="runs/oat/synth2", help="make-displays folder (synthetic)")
    parser.add_argument("--human-file", default=None, help="amazon_covers_1-70.json (default ../shared/data/oat/)")
    parser.add_argument("--samples", type=int, default=None, help="draws per display (default human 100, synthetic 20)")
    parser.add_argument("--results", default=str(RESULTS), help="folder for decoding_<which>.json")
    parser.add_argument("--limit", type=int, default=None, help="only the first N displays (smoke runs)")
    parser.add_argument("--landing", action="store_true", help="human: also score in the checkpoint's landing "
                        "pixels (landing.json) and add mbr_land; writes decoding_human_landing.json")
    parser.add_argument("--only", default=None, metavar="RULE:T:N", help="score just this decoding (e.g. mbr:0.7:100; "
                        "in landing pixels with --landing) instead of choosing among the candidates")
    parser.add_argument("--tag", default="", help="suffix of the results file (decoding_<which>[_landing]_<tag>.json), "
                        "so another model's selection does not overwrite the benchmark's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    human = args.which == "human"
    model_dir = args.oat or ("runs/oat/human_oat/best" if human else "runs/oat/synth_oat_big/best")
    oat = load_model(model_dir)
    landing = Landing.load(model_dirs(model_dir)[0]) if args.landing else None
    if args.landing and (landing is None or not human):
        sys.exit(f"--landing: needs the human set and {model_dir}/landing.json")
    n = args.samples or (100 if human else 20)
    if human:
        from seqverse.vision.oat.human import load_human

        displays = load_human(args.human_file)["valid"]
    else:
        c = oat.config
        displays = load_displays(Path(args.synth) / "valid.json", (c.crop_height, c.crop_width))
    displays = displays[: args.limit]
    rows = []
    runs = [(c, None) for c in CANDIDATES]
    if landing is not None:
        runs += [(c, landing) for c in CANDIDATES + LANDING_ONLY]
    if args.only:  # one decoding, scored as it is (no choice made): e.g. other seeds under a chosen rule
        rule, temp, draws = args.only.split(":")
        runs = [((rule, float(temp), int(draws)), landing)]
    for (rule, temp, draws), land in runs:
        if rule == "mbr_mm" and not human:
            continue  # MultiMatch is not one of the synthetic acceptance metrics
        k = 1 if rule == "greedy" else (min(draws, n) if draws else n)
        pixels = "landing" if land is not None else "centres"
        row = {"decoding": rule, "temperature": temp, "samples": k, "pixels": pixels,
               **evaluate(oat, displays, rule, temp, k, multimatch_too=human, landing=land)}
        rows.append(row)
        print(f"{rule:10s} T={temp:.1f} n={k:3d} {pixels:8s} "
              + "  ".join(f"{m}={row[m]:.4f}" for m, _ in METRICS[args.which]), flush=True)
    best = choose(rows, METRICS[args.which])
    out = {"command": "python benchmarks/vision/oat/select_decoding.py " + " ".join(sys.argv[1:]),
           "model": model_dir,
           "set": "validation", "n_displays": len(displays), "rule": "lowest sum of ranks on "
           + " and ".join(m for m, _ in METRICS[args.which]) + "; ties to the higher sequence score",
           "candidates": rows, "chosen": {k: rows[best][k] for k in ("decoding", "temperature", "samples", "pixels")},
           "seconds": round(time.time() - t0, 1)}
    Path(args.results).mkdir(parents=True, exist_ok=True)
    name = f"decoding_{args.which}{'_landing' if landing is not None else ''}{'_' + args.tag if args.tag else ''}.json"
    (Path(args.results) / name).write_text(json.dumps(out, indent=2))
    print("chosen:", out["chosen"])


if __name__ == "__main__":
    main()
