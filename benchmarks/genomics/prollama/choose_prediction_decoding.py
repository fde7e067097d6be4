"""Choose a model's prediction decoding on VALIDATION only: the paper's argmax, or the label-prior correction
(the answer distribution divided by the model's mean answer over 200 training domains, random.Random(0)).
Rule (packages/genomics/README.md, round 4): the higher validation accuracy; ties go to argmax. With --write
and the prior chosen, the prior goes into MODEL/answer_prior.json, which predict and evaluate then use.

    python benchmarks/genomics/prollama/choose_prediction_decoding.py MODEL --data-dir runs/prollama/data \
        -o benchmarks/genomics/prollama/prediction_decoding_round4.json [--write]
"""

import argparse
import json
import random
from pathlib import Path

import torch

from seqverse.genomics.prollama.data import labelled_examples
from seqverse.genomics.prollama.evaluate import prediction_metrics
from seqverse.genomics.prollama.tasks import ProLLaMA, estimate_answer_prior, write_answer_prior

PRIOR_DOMAINS, PRIOR_SEED = 200, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="merged ProLLaMA model directory")
    ap.add_argument("--data-dir", default="runs/prollama/data")
    ap.add_argument("-o", "--out", required=True, help="JSON with both validation readings and the choice")
    ap.add_argument("--write", action="store_true", help="write MODEL/answer_prior.json when the prior is chosen")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = ProLLaMA.from_dir(args.model)
    model.log_prior = None  # measure from the plain model even if a prior is already stored
    ex = labelled_examples(args.data_dir)
    sample = random.Random(PRIOR_SEED).sample(ex["train"], min(PRIOR_DOMAINS, len(ex["train"])))
    log_prior = estimate_answer_prior(model, [s for _, s, _ in sample])
    valid = [model.answer_logprobs(s) for _, s, _ in ex["valid"]]
    truth = [f for *_, f in ex["valid"]]
    readings = {name: prediction_metrics(truth, [model.superfamilies[int((lp - adj).argmax())] for lp in valid])
                for name, adj in (("argmax", 0.0), ("prior-corrected", log_prior))}
    chosen = "prior-corrected" if readings["prior-corrected"]["accuracy"] > readings["argmax"]["accuracy"] else "argmax"
    note = {"domains": len(sample), "seed": PRIOR_SEED, "split": "train", "chosen_on": "valid accuracy"}
    result = {"model": args.model, "valid": readings, "chosen": chosen, "prior": note}
    if args.write and chosen == "prior-corrected":
        result["written"] = str(write_answer_prior(args.model, model.superfamilies, log_prior, note))
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
