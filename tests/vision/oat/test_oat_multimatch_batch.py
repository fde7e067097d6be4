"""The vectorised MultiMatch equals ``multimatch-gaze`` (the reference, through ``metrics.multimatch``) bit for bit."""

import numpy as np
import pytest

from seqverse.vision.oat.metrics import multimatch
from seqverse.vision.oat.multimatch_batch import multimatch_against, padded_points

SIZE = (1500, 1000)


def _reference(pred, others, size=SIZE):
    return np.array([multimatch(pred, o, size) for o in others]).reshape(-1, 4)


@pytest.mark.parametrize("seed", range(6))
def test_equal_to_the_reference_on_continuous_scanpaths(seed):
    rng = np.random.default_rng(seed)
    for _ in range(8):
        pred = rng.uniform(0, 1000, (rng.integers(0, 20), 2))
        others = [rng.uniform(0, 1000, (rng.integers(0, 25), 2)) for _ in range(rng.integers(1, 30))]
        assert np.array_equal(multimatch_against(pred, others, SIZE), _reference(pred, others))


@pytest.mark.parametrize("seed", range(4))
def test_equal_to_the_reference_where_paths_tie_and_moves_cost_nothing(seed):
    """Grid-snapped scanpaths repeat saccade vectors (equal-cost alignments) and short ones are padded with
    zero-length saccades (zero-cost moves): the cases where the path Dijkstra keeps is not the only cheapest
    (checked: without the fallback to the reference for such pairs, these cases differ)."""
    rng = np.random.default_rng(100 + seed)
    for _ in range(8):
        pred = np.round(rng.uniform(0, 1000, (rng.integers(0, 15), 2)) / 200) * 200
        others = [np.round(rng.uniform(0, 1000, (rng.integers(0, 15), 2)) / 200) * 200 for _ in range(12)]
        others.append(pred.copy())   # identical scanpath: every diagonal move costs nothing
        assert np.array_equal(multimatch_against(pred, others, SIZE), _reference(pred, others))


def test_shapes_and_padding():
    assert multimatch_against(np.zeros((4, 2)), [], SIZE).shape == (0, 4)
    assert padded_points(np.array([[5.0, 6.0]])).tolist() == [[5, 6], [1, 1], [1, 1]]
    out = multimatch_against(np.array([[10.0, 10.0], [400.0, 300.0]]), [np.zeros((0, 2)), np.ones((7, 2))], SIZE)
    assert out.shape == (2, 4) and np.array_equal(out, _reference(np.array([[10.0, 10.0], [400.0, 300.0]]),
                                                                  [np.zeros((0, 2)), np.ones((7, 2))]))
