"""Greedy and uniform weight averaging ("model soups", Wortsman et al. 2022) of Recformer runs.

Every run must start from the same model (here: the paper-recipe standard model continued with
`I` fine-tuned). Runs are sorted by their own best validation NDCG@10; the greedy soup adds a run
only if the average's validation NDCG@10 rises. Test NDCG@10 is printed for the final soups only.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/recsys/recformer/soup.py RUN_DIR [RUN_DIR ...]

(RUN_DIR: a train_recformer.py split directory holding model/ and metrics.json)
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from seqverse.recsys import data as D
from seqverse.recsys.recformer import api
from seqverse.recsys.recformer.train import evaluate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--uniform", type=int, default=9, help="the uniform soup averages this many best runs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = sorted(args.runs, key=lambda r: -json.loads((Path(r) / "metrics.json").read_text())["best_valid_ndcg@10"])
    rec = api.load(Path(runs[0]) / "model")
    split = D.make_split(rec.dataset, "standard", seed=2020)
    states = {r: load_file(Path(r) / "model" / "model.safetensors") for r in runs}

    def ndcg(members, stage):
        avg = {k: sum(states[m][k].float() for m in members) / len(members) for k in states[members[0]]}
        rec.model.load_state_dict(avg)
        return evaluate(rec.model, rec.tokenizer, rec.items, split, stage)["ndcg@10"]

    soup, best = [runs[0]], ndcg([runs[0]], "valid")
    print(f"start {runs[0]}: valid {best:.4f}", flush=True)
    for run in runs[1:]:
        v = ndcg(soup + [run], "valid")
        print(f"+ {run}: valid {v:.4f} {'keep' if v > best else 'drop'}", flush=True)
        if v > best:
            soup, best = soup + [run], v
    print(json.dumps({"greedy": soup, "valid": best, "test": ndcg(soup, "test")}))
    uniform = runs[:args.uniform]
    print(json.dumps({"uniform": uniform, "valid": ndcg(uniform, "valid"), "test": ndcg(uniform, "test")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
