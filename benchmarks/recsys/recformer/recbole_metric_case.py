"""Compute RecBole 1.2.1's own metrics on a tiny hand-made full-ranking case (runs in RecBole's venv).

    runs/recbole-venv/bin/python benchmarks/recsys/recformer/recbole_metric_case.py \
        > tests/data/recformer/recbole_metric_case.json

The scores go through RecBole's ``Collector.eval_batch_collect`` (its topk / positive-index code)
and ``Evaluator.evaluate`` (its NDCG, Recall, MRR, Hit classes); tests/recsys/test_recformer_metrics.py
checks that seqverse's evaluation gives these numbers.
"""

import json

import numpy as np
import torch

# RecBole 1.2.1's NDCG uses np.float, an alias numpy removed in 1.24; restore just that alias.
if not hasattr(np, "float"):
    np.float = float
from recbole.evaluator import Collector, Evaluator

# 5 test cases x 9 columns; column 0 is the padding item (RecBole sets it to -inf)
SCORES = [
    [9.0, 0.1, 0.5, 0.9, 0.3, 0.2, 0.8, 0.7, 0.4],   # target 3: rank 1
    [0.0, 0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],   # target 8: rank 2
    [5.0, 0.3, 0.2, 0.1, 0.9, 0.8, 0.7, 0.6, 0.5],   # target 6: rank 3
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],   # target 1: rank 8 (outside top-k)
    [0.0, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85],  # target 4: rank 5
]
TARGETS = [3, 8, 6, 1, 4]
TOPK = [3, 5]


class _Cfg(dict):
    def __getitem__(self, k):
        return self.get(k)


def main():
    cfg = _Cfg(metrics=["NDCG", "Recall", "MRR", "Hit"], topk=TOPK, metric_decimal_place=12,
               eval_type=None, valid_metric="NDCG@5", device=torch.device("cpu"),
               eval_args={"mode": {"valid": "full", "test": "full"}})
    from recbole.utils import EvaluatorType
    cfg["eval_type"] = EvaluatorType.RANKING
    collector = Collector(cfg)
    scores = torch.tensor(SCORES)
    scores[:, 0] = -float("inf")  # Trainer._full_sort_batch_eval
    positive_u = torch.arange(len(TARGETS))
    positive_i = torch.tensor(TARGETS)
    collector.eval_batch_collect(scores, None, positive_u, positive_i)
    result = Evaluator(cfg).evaluate(collector.get_data_struct())
    print(json.dumps({"scores": SCORES, "targets": TARGETS, "topk": TOPK,
                      "recbole": {k: float(v) for k, v in result.items()},
                      "source": "recbole 1.2.1 Collector.eval_batch_collect + Evaluator.evaluate"}, indent=1))


if __name__ == "__main__":
    main()
