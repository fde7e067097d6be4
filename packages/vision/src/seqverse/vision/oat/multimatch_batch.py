"""MultiMatch of one scanpath against many, vectorised; ``multimatch-gaze`` stays the reference.

Minimum Bayes risk decoding and pixel refinement (:mod:`.decode`, :mod:`.refine`) score one candidate against
dozens of model draws thousands of times a display, and ``multimatch_gaze.docomparison`` spends most of its
2-3 ms a call building a Python graph, running scipy's Dijkstra on it and looking up each aligned pair with
``np.where``. The alignment it computes is the cheapest monotone path through the grid of saccade pairs (moves
right, down or diagonal; the cost of a move is the vector difference of the pair it enters), which is a dynamic
programme over anti-diagonals, done here for all draws at once. The measures then follow ``docomparison``
operation for operation (vector, direction, length and position; medians over the aligned pairs; the same
normalisation), so the numbers are equal bit for bit.

Where the path is not unique (two predecessors give exactly the same cost on the cheapest path) the path that
Dijkstra keeps depends on its visiting order, and a zero-cost move may be read differently by scipy's sparse
graph; such a pair is scored by ``multimatch-gaze`` itself. ``tests/vision/oat/test_oat_multimatch_batch.py``
holds the two equal, ties and zero moves included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def padded_points(points: np.ndarray) -> np.ndarray:
    """(n, 2) pixels, padded to 3 fixations at (1, 1) as the official ``calculate_mm.py`` does."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) < 3:
        pad = np.ones((3, 2))
        pad[: len(pts)] = pts
        pts = pad
    return pts


def _saccades(pts: np.ndarray) -> dict[str, np.ndarray]:
    """As ``multimatch_gaze.gen_scanpath_structure``: start point, x/y length, amplitude and angle."""
    lenx, leny = np.diff(pts[:, 0]), np.diff(pts[:, 1])
    theta = np.arctan2(leny, lenx)
    return {"x": pts[:-1, 0], "y": pts[:-1, 1], "lenx": lenx, "leny": leny,
            "rho": np.sqrt(lenx ** 2 + leny ** 2),
            "theta": np.where(theta < 0, math.pi + (math.pi + theta), theta)}   # as cal_angulardifference


def stack_others(others: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The others' saccades padded with NaN to a (K, m) grid, and each one's saccade count; built once where the
    same others meet many candidates (:func:`.refine.refine_pixels`)."""
    sacs = [_saccades(padded_points(o)) for o in others]
    counts = np.array([len(s["x"]) for s in sacs])
    width = int(counts.max())
    out = {}
    for key in sacs[0]:
        grid = np.full((len(sacs), width), np.nan)
        for k, s in enumerate(sacs):
            grid[k, : counts[k]] = s[key]
        out[key] = grid
    return out, counts


def _medians(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row medians of the first ``lengths[k]`` entries (NaN after), as ``np.median``: the middle value, or the mean
    of the two middle values."""
    ordered = np.sort(values, axis=1)   # NaN sorts last
    rows = np.arange(len(values))
    return (ordered[rows, (lengths - 1) // 2] + ordered[rows, lengths // 2]) / 2


def multimatch_against(pred_xy: np.ndarray, others: Sequence[np.ndarray], size: tuple[int, int],
                       stacked: tuple[dict[str, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(K, 4) MultiMatch vector, direction, length and position similarity of ``pred_xy`` against each of the K
    ``others``: equal to ``metrics.multimatch(pred_xy, other, size)`` for each. ``stacked``: ``stack_others(others)``
    when the caller already has it."""
    if not len(others):
        return np.zeros((0, 4))
    a = _saccades(padded_points(pred_xy))
    b, counts = stacked if stacked is not None else stack_others(others)
    n, width, k_all = len(a["x"]), b["x"].shape[1], len(others)
    # cost of entering cell (i, j): the vector difference of saccade i (pred) and saccade j (other)
    cost = np.sqrt(np.abs(a["lenx"][None, :, None] - b["lenx"][:, None, :]) ** 2
                   + np.abs(a["leny"][None, :, None] - b["leny"][:, None, :]) ** 2)
    dist = np.full((k_all, n + 1, width + 1), np.inf)   # row/column 0: outside the grid
    step = np.zeros((k_all, n, width), dtype=np.int8)   # 0 up, 1 left, 2 diagonal
    ties = np.zeros((k_all, n, width), dtype=bool)
    dist[:, 1, 1] = 0.0
    for s in range(1, n + width - 1):
        i = np.arange(max(0, s - width + 1), min(n - 1, s) + 1)
        j = s - i
        c = cost[:, i, j]
        moves = np.stack([dist[:, i, j + 1] + c, dist[:, i + 1, j] + c, dist[:, i, j] + c])
        best = moves.min(axis=0)
        dist[:, i + 1, j + 1] = best
        step[:, i, j] = moves.argmin(axis=0)
        ties[:, i, j] = (moves == best).sum(axis=0) > 1
    # walk back from each pair's last cell, collecting the aligned saccade pairs
    rows = np.arange(k_all)
    ci, cj = np.full(k_all, n - 1), counts - 1
    path_i = np.zeros((k_all, int((n + counts - 1).max())), dtype=int)
    path_j = np.zeros_like(path_i)
    filled = np.zeros(k_all, dtype=int)
    unsure = np.zeros(k_all, dtype=bool)
    active = np.ones(k_all, dtype=bool)
    while active.any():
        r = rows[active]
        path_i[r, filled[r]], path_j[r, filled[r]] = ci[r], cj[r]
        filled[r] += 1
        active &= (ci > 0) | (cj > 0)
        r = rows[active]
        unsure[r] |= ties[r, ci[r], cj[r]]
        move = step[r, ci[r], cj[r]]
        ci[r] -= move != 1
        cj[r] -= move != 0
    valid = np.arange(path_i.shape[1])[None, :] < filled[:, None]
    pi, pj = path_i, path_j

    def along(values: np.ndarray) -> np.ndarray:
        return _medians(np.where(valid, values, np.nan), filled)

    def square(x: np.ndarray) -> np.ndarray:   # the reference squares numpy scalars: C pow(), not x * x
        return np.float_power(x, 2)

    other = rows[:, None], pj
    vector = along(np.sqrt(square(a["lenx"][pi] - b["lenx"][other]) + square(a["leny"][pi] - b["leny"][other])))
    angle = np.abs(a["theta"][pi] - b["theta"][other])
    direction = along(np.where(angle > math.pi, 2 * math.pi - angle, angle))
    length_diff = along(np.abs(a["rho"][pi] - b["rho"][other]))
    position = along(np.sqrt(square(a["x"][pi] - b["x"][other]) + square(a["y"][pi] - b["y"][other])))
    diagonal = math.sqrt(size[0] ** 2 + size[1] ** 2)
    out = np.stack([1 - vector / (2 * diagonal), 1 - direction / math.pi,
                    1 - length_diff / diagonal, 1 - position / diagonal], axis=1)
    # a zero-cost move or an equal-cost choice on the path: let the reference decide that pair
    zero = np.array([(cost[k, :, : counts[k]] == 0).any() for k in range(k_all)])
    from .metrics import multimatch

    for k in np.flatnonzero(unsure | zero):
        out[k] = multimatch(pred_xy, others[k], size)
    return out
