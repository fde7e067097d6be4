"""Per-family recall and answer counts on the seed-alignment members, with the paper's argmax and with the
stored label-prior correction (explains a macro-F1 change; reads a test set, so it selects nothing).

    python benchmarks/genomics/prollama/per_family_recall.py [--model DIR] [--data-dir runs/prollama/data]
"""

import argparse
import collections

import torch

from seqverse.genomics.prollama import data as pdata
from seqverse.genomics.prollama.tasks import ProLLaMA


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory with answer_prior.json (default: embedded)")
    ap.add_argument("--data-dir", default="runs/prollama/data")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = ProLLaMA.from_dir(args.model)
    if model.log_prior is None:
        raise SystemExit("the model has no answer_prior.json")
    members = [(s, i.split("|")[0]) for i, s in pdata._iter_fasta(f"{args.data_dir}/external_test.fasta")]
    members = [(s, f) for s, f in members if f in model.superfamilies]
    total = collections.Counter(f for _, f in members)
    for name, adjust in (("argmax", 0.0), ("prior-corrected", model.log_prior)):
        hits, answers = collections.Counter(), collections.Counter()
        for seq, fam in members:
            answer = model.superfamilies[int((model.answer_logprobs(seq) - adjust).argmax())]
            answers[answer] += 1
            hits[fam] += answer == fam
        print(name, "recall:", {f: f"{hits[f]}/{total[f]}" for f in total}, "answers:", dict(answers))


if __name__ == "__main__":
    main()
