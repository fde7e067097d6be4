"""MBR pixel refinement: where inside the chosen objects to put the predicted fixations (ours, round 6).

OAT decides *which objects* are fixated; the official MultiMatch compares *pixels* with people's raw fixations,
and its direction and length measures depend on where inside an object each fixation sits. The landing model
(:mod:`.landing`) gives mean positions, chosen for no metric. Minimum Bayes risk applies to the pixels as to the
objects: keep the chosen object scanpath and move each fixation inside its own box while the expected MultiMatch
against the model's other draws, each placed at a random landing (pseudo-people), rises. Coordinate ascent on one
coordinate of one fixation at a time, steps of ``step`` box widths/heights, ``passes`` sweeps (fewer when a sweep
changes nothing); a move is kept only if it raises the expected score, so the result is never below the start
(once the start is inside its boxes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .displays import Display

STEP, PASSES = 0.15, 2   # fixed in round 6's protocol (a probe on two folds' validation collages)
EDGE = 0.02   # refined fixations keep this share of the box's width/height from its edges
PIXELS = ("landing", "refined")   # `oat predict --pixels`: mean landing positions, or refined by this module


def expected_multimatch(display: Display, xy: np.ndarray, evidence: Sequence[np.ndarray]) -> float:
    """Mean MultiMatch (mean of its four measures) of pixel scanpath ``xy`` against each evidence scanpath."""
    from .multimatch_batch import multimatch_against

    return float(np.mean(multimatch_against(xy, evidence, (display.width, display.height)).mean(axis=1)))


def refine_pixels(display: Display, objects: Sequence[int], start: np.ndarray, evidence: Sequence[np.ndarray],
                  step: float = STEP, passes: int = PASSES) -> np.ndarray:
    """``start`` ((n, 2) pixels of ``objects``) moved, one coordinate at a time, to raise
    :func:`expected_multimatch` against ``evidence``; every fixation stays inside its object's box."""
    xy = np.array(start, dtype=float).reshape(-1, 2)
    if not len(xy) or not len(evidence):
        return xy
    boxes = display.boxes[np.asarray(objects, dtype=int)]
    sizes = boxes[:, 2:] - boxes[:, :2]
    # strictly inside: a point on an edge shared with a neighbour would be read back as the neighbour
    lo, hi = boxes[:, :2] + EDGE * sizes, boxes[:, 2:] - EDGE * sizes
    xy = np.clip(xy, lo, hi)
    best = expected_multimatch(display, xy, evidence)
    for _ in range(passes):
        moved = False
        for t in range(len(xy)):
            for axis in (0, 1):
                for sign in (-1.0, 1.0):
                    cand = xy.copy()
                    cand[t, axis] = np.clip(cand[t, axis] + sign * step * sizes[t, axis], lo[t, axis], hi[t, axis])
                    if cand[t, axis] == xy[t, axis]:
                        continue
                    score = expected_multimatch(display, cand, evidence)
                    if score > best + 1e-9:
                        xy, best, moved = cand, score, True
        if not moved:
            break
    return xy


def refined_landing_pixels(display: Display, objects: Sequence[int], draws: Sequence[Sequence[int]], landing,
                           rng: np.random.Generator, step: float = STEP, passes: int = PASSES) -> np.ndarray:
    """Pixels for the chosen ``objects`` (one of ``draws``): its mean landing positions, refined against every
    other non-empty draw placed at one random landing from ``rng``."""
    chosen = [int(o) for o in objects]
    skipped = False
    evidence = []
    for q in draws:
        if not skipped and [int(o) for o in q] == chosen:
            skipped = True   # the chosen draw itself is not evidence (as in the MBR choice)
            continue
        if len(q):
            evidence.append(landing.draw(display, q, rng))
    return refine_pixels(display, chosen, landing.place(display, chosen), evidence, step, passes)


def refined_scanpaths(displays: Sequence[Display], paths: Sequence[Sequence[int]], draws: Sequence[Sequence],
                      landing, seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """:func:`refined_landing_pixels` for every display (display ``k``'s pseudo-people from seed (seed + k, 1)),
    rounded to 0.1 pixel as ``oat predict`` writes them."""
    items = list(enumerate(displays))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="refining pixels", unit="display")
    return [np.round(refined_landing_pixels(d, paths[k], draws[k], landing, np.random.default_rng((seed + k, 1))), 1)
            for k, d in items]
