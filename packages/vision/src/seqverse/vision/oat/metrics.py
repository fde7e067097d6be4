"""Scanpath metrics as the official OAT code computes them.

Sequence score: ``nw_matching`` in ``src/evaluation/saliency_metric.py`` of HKUST-NISL/oat_eccv24
(Needleman-Wunsch on object indices, match 1, mismatch 0, gap 0, divided by the longer length).
Behavioural measures and delta: ``behavior`` in ``src/evaluation/evaluation_model.py`` and
``validation_epoch_end`` / ``Evaluation.evaluation`` (mean relative difference of five measures).
MultiMatch: the ``multimatch-gaze`` package, as ``src/evaluation/MM/calculate_mm.py``: the prediction's
object centres against the person's raw fixation pixels (durations set to 1, no grouping, scanpaths
shorter than 3 padded to 3 fixations); see ``predict.score_scanpaths``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import numpy as np

BEHAVIOUR_NAMES = ("target_found", "length", "search_ratio", "refix_ratio", "revisit_ratio")
MULTIMATCH_NAMES = ("vector", "direction", "length", "position")


def sequence_score(pred: Sequence[int], truth: Sequence[int]) -> float:
    """Needleman-Wunsch score (match 1, gap 0) divided by the longer sequence's length."""
    n, m = len(pred), len(truth)
    if max(n, m) == 0:
        return 1.0
    F = np.zeros((n + 1, m + 1))
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            F[i, j] = max(F[i - 1, j - 1] + (pred[i - 1] == truth[j - 1]), F[i - 1, j], F[i, j - 1])
    return float(F[n, m] / max(n, m))


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Edit distance (insert, delete, substitute each cost 1) between two object sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def behaviour(scanpath: Sequence[int], target: int) -> np.ndarray:
    """Five measures of one scanpath: target found (last fixation on it), length, search/refix/revisit ratios.

    As ``behavior`` in the official code: runs of one object count once as a search (first visit) or a
    revisit (seen before), every extra fixation in a run is a refixation; the three ratios sum to 1.
    """
    if len(scanpath) == 0:
        return np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    search = refix = revisit = 0
    seen = set()
    for obj, run in groupby(scanpath):
        k = len(list(run))
        if obj in seen:
            revisit += 1
        else:
            search += 1
        refix += k - 1
        seen.add(obj)
    n = len(scanpath)
    return np.array([float(scanpath[-1] == target), float(n), search / n, refix / n, revisit / n])


def mean_behaviour(scanpaths: Sequence[Sequence[int]], targets: Sequence[int]) -> np.ndarray:
    """Average of :func:`behaviour` over scanpaths (each with its display's target)."""
    return np.mean([behaviour(s, t) for s, t in zip(scanpaths, targets)], axis=0)


def behavioural_delta(pred: np.ndarray, human: np.ndarray) -> float:
    """Mean relative difference |pred - human| / human over the five measures (lower is better).

    A measure whose human mean is 0 (e.g. no refixations at all) is left out rather than divided by 0.
    """
    keep = np.abs(human) > 1e-12
    return float(np.mean(np.abs(pred[keep] - human[keep]) / np.abs(human[keep])))


def _as_multimatch(points: np.ndarray) -> np.recarray:
    from .multimatch_batch import padded_points

    pts = padded_points(points)   # as calculate_mm.py: short scanpaths padded to 3 fixations
    rec = np.recarray((len(pts),), dtype=[("start_x", "f8"), ("start_y", "f8"), ("duration", "f8")])
    rec.start_x, rec.start_y, rec.duration = pts[:, 0], pts[:, 1], 1.0
    return rec


def multimatch(pred_xy: np.ndarray, human_xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MultiMatch vector, direction, length and position similarity (1 = identical) of two pixel scanpaths."""
    import warnings

    import multimatch_gaze

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = multimatch_gaze.docomparison(_as_multimatch(pred_xy), _as_multimatch(human_xy), screensize=list(size))
    return np.array(res[:4], dtype=float)
