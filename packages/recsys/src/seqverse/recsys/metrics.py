"""Full-ranking top-k metrics exactly as RecBole 1.2.1 computes them for next-item prediction.

RecBole (``Trainer._full_sort_batch_eval`` + ``recbole.evaluator.metrics``) scores every item,
sets the padding item 0 to -inf (sequential models mask no history), takes ``torch.topk`` and
marks which of the top-k is the positive item. With one positive per test case:
Recall@k = Hit@k = 1 if the target is in the top k; MRR@k = 1/rank; NDCG@k = 1/log2(rank + 1);
each averaged over test cases. :func:`topk_positions` is the fast path (one ``torch.topk`` per
batch); :func:`topk_positions_reference` ranks one case at a time in plain Python, and the tests
hold the two equal (ties aside: both treat an item tied with the target as ranked above it only
if ``torch.topk`` puts it first, so the reference is used on tie-free scores).
"""

from __future__ import annotations

import math

import torch

K = 10


def topk_positions(scores: torch.Tensor, targets: torch.Tensor, k: int = K) -> torch.Tensor:
    """1-based position of each target in the top-k of its row (0 if absent). Column 0 is padding."""
    scores = scores.clone()
    scores[:, 0] = -float("inf")
    topk_idx = torch.topk(scores, k, dim=-1).indices
    hits = topk_idx == targets.view(-1, 1)
    return torch.where(hits.any(1), hits.float().argmax(1) + 1, torch.zeros_like(targets))


def topk_positions_reference(scores, targets, k: int = K) -> list[int]:
    """Plain reference: sort each row's items (padding excluded) by score, find the target."""
    out = []
    for row, target in zip(scores.tolist(), targets.tolist()):
        order = sorted(range(1, len(row)), key=lambda i: -row[i])
        rank = order.index(target) + 1
        out.append(rank if rank <= k else 0)
    return out


def metrics_from_positions(positions, k: int = K) -> dict[str, float]:
    """Average NDCG@k, Recall@k (= Hit@k with one target) and MRR@k over test cases."""
    positions = [int(p) for p in positions]
    n = len(positions)
    if n == 0:
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, f"mrr@{k}": 0.0, "n": 0}
    ndcg = sum(1.0 / math.log2(p + 1) for p in positions if 0 < p <= k) / n
    recall = sum(1 for p in positions if 0 < p <= k) / n
    mrr = sum(1.0 / p for p in positions if 0 < p <= k) / n
    return {f"ndcg@{k}": ndcg, f"recall@{k}": recall, f"mrr@{k}": mrr, "n": n}
