"""MBR pixel refinement: where inside the chosen objects to put the predicted fixations (ours, round 6).

OAT decides *which objects* are fixated; the official MultiMatch compares *pixels* with people's raw fixations,
and its direction and length measures depend on where inside an object each fixation sits. The landing model
(:mod:`.landing`) gives mean positions, chosen for no metric. Minimum Bayes risk applies to the pixels as to the
objects: keep the chosen object scanpath and move each fixation inside its own box while the expected MultiMatch
against the model's other draws, each placed at a random landing (pseudo-people), rises. Coordinate ascent on one
coordinate of one fixation at a time, steps of ``step`` box widths/heights, ``passes`` sweeps (fewer when a sweep
changes nothing); a move is kept only if it raises the expected score, so the result is never below the start
(once the start is inside its boxes).

Round 7 (:func:`refined_top`): the draw that is best after refinement need not be the one MBR chose before it, so
the top draws are each refined and the best refined one is kept, judged on a second, independent set of
pseudo-people. On 70 held-out human collages this lifted MultiMatch by +0.007 over round 6 (packages/vision/README.md,
"Human data, round 7").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .displays import Display

STEP, PASSES = 0.15, 2   # fixed in round 6's protocol (a probe on two folds' validation collages)
EDGE = 0.02   # refined fixations keep this share of the box's width/height from its edges
TOP, LANDINGS, FINE_STEP = 8, 4, 0.05   # refined_top, fixed in round 7's protocol (a probe, as round 6's)
# `oat predict --pixels`: mean landing positions, the chosen draw refined (round 6), or the best of the top draws
# refined (round 7)
PIXELS = ("landing", "refined", "refined_top")


def expected_multimatch(display: Display, xy: np.ndarray, evidence: Sequence[np.ndarray], stacked=None) -> float:
    """Mean MultiMatch (mean of its four measures) of pixel scanpath ``xy`` against each evidence scanpath
    (``stacked``: the evidence's ``multimatch_batch.stack_others``, when already built)."""
    from .multimatch_batch import multimatch_against

    size = (display.width, display.height)
    return float(np.mean(multimatch_against(xy, evidence, size, stacked=stacked).mean(axis=1)))


def refine_pixels(display: Display, objects: Sequence[int], start: np.ndarray, evidence: Sequence[np.ndarray],
                  step: float = STEP, passes: int = PASSES) -> np.ndarray:
    """``start`` ((n, 2) pixels of ``objects``) moved, one coordinate at a time, to raise
    :func:`expected_multimatch` against ``evidence``; every fixation stays inside its object's box."""
    from .multimatch_batch import stack_others

    xy = np.array(start, dtype=float).reshape(-1, 2)
    if not len(xy) or not len(evidence):
        return xy
    boxes = display.boxes[np.asarray(objects, dtype=int)]
    sizes = boxes[:, 2:] - boxes[:, :2]
    # strictly inside: a point on an edge shared with a neighbour would be read back as the neighbour
    lo, hi = boxes[:, :2] + EDGE * sizes, boxes[:, 2:] - EDGE * sizes
    xy = np.clip(xy, lo, hi)
    stacked = stack_others(evidence)   # the evidence is fixed: padded once, not at every candidate move
    best = expected_multimatch(display, xy, evidence, stacked)
    for _ in range(passes):
        moved = False
        for t in range(len(xy)):
            for axis in (0, 1):
                for sign in (-1.0, 1.0):
                    cand = xy.copy()
                    cand[t, axis] = np.clip(cand[t, axis] + sign * step * sizes[t, axis], lo[t, axis], hi[t, axis])
                    if cand[t, axis] == xy[t, axis]:
                        continue
                    score = expected_multimatch(display, cand, evidence, stacked)
                    if score > best + 1e-9:
                        xy, best, moved = cand, score, True
        if not moved:
            break
    return xy


def refine_coarse_fine(display: Display, objects: Sequence[int], start: np.ndarray,
                       evidence: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`refine_pixels` at steps of STEP, then of FINE_STEP (round 7)."""
    xy = refine_pixels(display, objects, start, evidence)
    return refine_pixels(display, objects, xy, evidence, step=FINE_STEP)


def pseudo_people(display: Display, draws: Sequence[Sequence[int]], skip: int, landing, rng: np.random.Generator,
                  landings: int = 1) -> list[np.ndarray]:
    """Every non-empty draw but number ``skip``, each placed at ``landings`` random landings from ``rng``."""
    return [landing.draw(display, q, rng) for j, q in enumerate(draws) if j != skip and len(q) for _ in range(landings)]


def refined_landing_pixels(display: Display, objects: Sequence[int], draws: Sequence[Sequence[int]], landing,
                           rng: np.random.Generator, step: float = STEP, passes: int = PASSES) -> np.ndarray:
    """Pixels for the chosen ``objects`` (one of ``draws``): its mean landing positions, refined against every
    other non-empty draw placed at one random landing from ``rng`` (round 6)."""
    chosen = [int(o) for o in objects]
    # the chosen draw itself is not evidence (as in the MBR choice)
    skip = next((j for j, q in enumerate(draws) if [int(o) for o in q] == chosen), -1)
    evidence = pseudo_people(display, draws, skip, landing, rng)
    return refine_pixels(display, chosen, landing.place(display, chosen), evidence, step, passes)


def refined_top(display: Display, draws: Sequence[Sequence[int]], landing, seed: int,
                top: int = TOP, landings: int = LANDINGS) -> tuple[list[int], np.ndarray]:
    """Round 7: refine the ``top`` draws of the MultiMatch MBR (``mbr_land_mm``'s utility, its pseudo-people from
    ``seed`` as :func:`.decode.decode` draws them) and keep the one whose refined pixels score best; choosing after
    refining, since the refinement gains more on some draws than on others. Each candidate is refined against the
    other draws at ``landings`` random landings each (steps of STEP, then FINE_STEP, PASSES passes each) and judged
    against a second, independent set of pseudo-people, so that the choice does not reward fitting the first set's
    noise. Returns (objects, pixels)."""
    from .decode import mbr_landing_gains

    gains = mbr_landing_gains(display, draws, landing, np.random.default_rng(seed), sequence_weight=0.0)
    best, best_score = None, -np.inf
    for i in np.argsort(-gains, kind="stable")[:top]:
        if not np.isfinite(gains[i]):
            continue
        objects = [int(o) for o in draws[i]]
        fit = pseudo_people(display, draws, i, landing, np.random.default_rng((seed, 3, int(i))), landings)
        judge = pseudo_people(display, draws, i, landing, np.random.default_rng((seed, 4, int(i))), landings)
        xy = refine_coarse_fine(display, objects, landing.place(display, objects), fit)
        score = expected_multimatch(display, xy, judge) if judge else 0.0
        if score > best_score:
            best, best_score = (objects, xy), score
    if best is None:   # every draw empty
        return [], np.zeros((0, 2))
    return best


def _progress(items: list, progress: bool, desc: str) -> list:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="display")


def refined_scanpaths(displays: Sequence[Display], paths: Sequence[Sequence[int]], draws: Sequence[Sequence],
                      landing, seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """:func:`refined_landing_pixels` for every display (display ``k``'s pseudo-people from seed (seed + k, 1)),
    rounded to 0.1 pixel as ``oat predict`` writes them."""
    items = _progress(list(enumerate(displays)), progress, "refining pixels")
    return [np.round(refined_landing_pixels(d, paths[k], draws[k], landing, np.random.default_rng((seed + k, 1))), 1)
            for k, d in items]


def refined_top_scanpaths(displays: Sequence[Display], draws: Sequence[Sequence], landing, seed: int = 0,
                          progress: bool = False) -> tuple[list[list[int]], list[np.ndarray]]:
    """:func:`refined_top` for every display (display ``k`` with seed ``seed + k``, as the decoding): the chosen
    object scanpaths and their pixels, rounded to 0.1 pixel."""
    items = _progress(list(enumerate(displays)), progress, "refining the top draws")
    chosen = [refined_top(d, draws[k], landing, seed + k) for k, d in items]
    return [c[0] for c in chosen], [np.round(c[1], 1) for c in chosen]
