"""Apply round 4's rule (packages/genomics/README.md, written before the runs) to the validation runs.

    python benchmarks/genomics/prollama/select_round4.py runs/prollama \
        -o benchmarks/genomics/prollama/selection_round4.json

Reads RUN/valid_{c2,c4,c5}.json (`prollama evaluate --split valid --seed 1 -n 20`). Eligible: every family's
median nearest-training identity < 0.9. Score: mean of validation accuracy and the mean hit rate over Pkinase,
fn3, RRM_1, SMC_N. Finalist: the eligible candidate with the higher score (within 0.02: c4). It replaces c2
only if its score is above c2's by more than 0.02.
"""

import argparse
import json
from pathlib import Path

FAMILIES = ("Pkinase", "fn3", "RRM_1", "SMC_N")
CANDIDATES = {"c4": "full balance", "c5": "full balance + per-record loss"}
MARGIN = 0.02


def reading(result: dict) -> dict:
    sysm = result["systems"]["prollama"]
    gen = sysm["generation"]
    hits = [gen[f]["hit_rate"] for f in FAMILIES]
    acc = sysm["prediction"]["held_out_clusters"]["accuracy"]
    return {"hits": hits, "median_nearest": [gen[f]["median_nearest_identity"] for f in FAMILIES],
            "accuracy": acc, "macro_f1": sysm["prediction"]["held_out_clusters"]["macro_f1"],
            "perplexity": sysm["perplexity"], "eligible": all(gen[f]["median_nearest_identity"] < 0.9 for f in FAMILIES),
            "score": round((acc + sum(hits) / len(hits)) / 2, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="directory holding valid_c2.json, valid_c4.json, valid_c5.json")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    run = Path(args.run)
    rows = {name: reading(json.loads((run / f"valid_{name}.json").read_text())) for name in ("c2", *CANDIDATES)}
    eligible = [c for c in CANDIDATES if rows[c]["eligible"]]
    finalist = None
    if eligible:
        best = max(eligible, key=lambda c: rows[c]["score"])
        finalist = "c4" if "c4" in eligible and rows[best]["score"] - rows["c4"]["score"] <= MARGIN else best
    replaces = finalist is not None and rows[finalist]["score"] > rows["c2"]["score"] + MARGIN
    out = {"rule": __doc__.split("\n\n")[2].strip(), "validation": rows, "finalist": finalist, "replaces_c2": replaces}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| model | Pk / fn3 / RRM_1 / SMC_N hit | median nearest id | acc valid | macro-F1 | ppl | score |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        label = f"{name} ({CANDIDATES.get(name, 'shipped, re-measured')})"
        print(f"| {label} | {' / '.join(f'{h:.2f}' for h in r['hits'])} | "
              f"{' / '.join(f'{m:.2f}' for m in r['median_nearest'])} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
              f"{r['perplexity']:.1f} | {r['score']:.3f} |")
    print(f"\nfinalist: {finalist}; replaces c2: {replaces}")


if __name__ == "__main__":
    main()
