"""Our evaluation gives RecBole's numbers; the fast top-k path equals the plain reference."""

import json
from pathlib import Path

import pytest
import torch

from seqverse.recsys.metrics import metrics_from_positions, topk_positions, topk_positions_reference

CASE = Path(__file__).resolve().parents[1] / "data" / "recformer" / "recbole_metric_case.json"


def test_recbole_numbers_on_hand_made_case():
    case = json.loads(CASE.read_text())  # written by benchmarks/recsys/recformer/recbole_metric_case.py
    scores, targets = torch.tensor(case["scores"]), torch.tensor(case["targets"])
    for k in case["topk"]:
        ours = metrics_from_positions(topk_positions(scores, targets, k).tolist(), k)
        for name in ("ndcg", "recall", "mrr"):
            assert ours[f"{name}@{k}"] == pytest.approx(case["recbole"][f"{name}@{k}"], abs=1e-9)
        assert ours[f"recall@{k}"] == pytest.approx(case["recbole"][f"hit@{k}"], abs=1e-9)


def test_padding_item_is_never_ranked():
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0]])
    assert topk_positions(scores, torch.tensor([3]), 2).tolist() == [1]


def test_fast_equals_reference():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(50, 300, generator=g)  # continuous: no ties
    targets = torch.randint(1, 300, (50,), generator=g)
    targets[:10] = scores[:10, 1:].argmax(1) + 1  # some hits at rank 1
    assert topk_positions(scores, targets, 10).tolist() == topk_positions_reference(scores, targets, 10)
