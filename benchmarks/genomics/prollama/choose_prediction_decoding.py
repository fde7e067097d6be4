"""Choose a model's prediction decoding on VALIDATION only, among (in this order):

- argmax: the paper's answer;
- prior-corrected: the answer distribution divided by the model's mean answer over 200 training domains,
  random.Random(0) (round 4);
- generative: the generation view by Bayes' rule, uniform prior (ProLLaMA.generation_logprobs; round 5);
- combined: prior-corrected answer + generative, summed log posteriors (round 5).

Rule (packages/genomics/README.md, rounds 4 and 5): the highest validation accuracy; ties go to the earlier.
--candidates limits the list (round 4 ran the first two). With --write the prior goes into
MODEL/answer_prior.json when a chosen decoding uses it, and the choice into MODEL/prediction.json; predict and
evaluate then use them.

    python benchmarks/genomics/prollama/choose_prediction_decoding.py MODEL --data-dir runs/prollama/data \
        -o benchmarks/genomics/prollama/prediction_decoding_round4.json [--write]
"""

import argparse
import json
import random
from pathlib import Path

import torch
from tqdm import tqdm

from seqverse.genomics.prollama.data import PREDICTION_DECODINGS as DECODINGS
from seqverse.genomics.prollama.data import labelled_examples
from seqverse.genomics.prollama.evaluate import prediction_metrics
from seqverse.genomics.prollama.tasks import (
    USES_PRIOR,
    ProLLaMA,
    combine_views,
    estimate_answer_prior,
    write_answer_prior,
    write_prediction_decoding,
)

PRIOR_DOMAINS, PRIOR_SEED = 200, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="merged ProLLaMA model directory")
    ap.add_argument("--data-dir", default="runs/prollama/data")
    ap.add_argument("-o", "--out", required=True, help="JSON with both validation readings and the choice")
    ap.add_argument("--write", action="store_true", help="store the chosen decoding (and its prior) in MODEL")
    ap.add_argument("--candidates", default=",".join(DECODINGS), help=f"comma-separated subset of {DECODINGS}")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = ProLLaMA.from_dir(args.model)
    model.log_prior = None  # measure from the plain model even if a prior is already stored
    ex = labelled_examples(args.data_dir)
    sample = random.Random(PRIOR_SEED).sample(ex["train"], min(PRIOR_DOMAINS, len(ex["train"])))
    log_prior = estimate_answer_prior(model, [s for _, s, _ in sample])
    candidates = [c for c in DECODINGS if c in args.candidates.split(",")]
    truth = [f for *_, f in ex["valid"]]
    answer = [model.answer_logprobs(s) for _, s, _ in tqdm(ex["valid"], desc="answer view")]
    generative = ([model.generation_logprobs(s) for _, s, _ in tqdm(ex["valid"], desc="generation view")]
                  if {"generative", "combined"} & set(candidates) else None)
    def predicted(name: str, i: int) -> str:
        post = combine_views(name, answer[i], generative[i] if generative else None, log_prior)
        return model.superfamilies[int(post.argmax())]

    readings = {name: prediction_metrics(truth, [predicted(name, i) for i in range(len(truth))]) for name in candidates}
    chosen = max(candidates, key=lambda c: (readings[c]["accuracy"], -candidates.index(c)))
    note = {"domains": len(sample), "seed": PRIOR_SEED, "split": "train", "chosen_on": "valid accuracy"}
    result = {"model": args.model, "candidates": candidates, "valid": readings, "chosen": chosen, "prior": note}
    if args.write:
        result["written"] = [str(write_prediction_decoding(args.model, chosen))]
        if chosen in USES_PRIOR:
            result["written"].append(str(write_answer_prior(args.model, model.superfamilies, log_prior, note)))
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
