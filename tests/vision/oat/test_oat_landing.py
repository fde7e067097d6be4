"""The landing model (where in an object a fixation lands) and the decoding that uses it."""

import json
import shutil

import numpy as np
import pytest
from test_oat import tiny  # noqa: F401  (module fixture: a tiny model and three displays)

from seqverse.core.clikit import InputError
from seqverse.vision.cli import main
from seqverse.vision.oat.decode import decode, mbr_landing_index
from seqverse.vision.oat.displays import Display, load_displays
from seqverse.vision.oat.landing import Landing, fit_landing, landing_features


def _grid(n_cols=4, n_rows=3, w=40.0, h=60.0) -> Display:
    boxes = np.array([[c * w, r * h, (c + 1) * w, (r + 1) * h] for r in range(n_rows) for c in range(n_cols)])
    return Display("g.jpg", int(n_cols * w), int(n_rows * h), boxes, target=5, grid=(n_cols, n_rows))


def test_features_mark_first_visits_refixations_and_incoming_direction():
    d = _grid()
    f = landing_features(d, [0, 1, 1, 5])  # start, step right, refixate, step down
    np.testing.assert_allclose(f, [[1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])


def test_fit_recovers_a_known_landing_rule_and_place_applies_it():
    truth = np.array([[0.0, -0.1], [0.2, 0.1], [-0.15, 0.0], [0.0, -0.05]])
    d = _grid()
    rng = np.random.default_rng(0)
    for person in range(30):
        objs = [int(o) for o in rng.integers(0, 12, size=8)]
        objs[3] = objs[2]  # at least one refixation each
        sizes = np.stack([d.boxes[objs, 2] - d.boxes[objs, 0], d.boxes[objs, 3] - d.boxes[objs, 1]], 1)
        d.fixations[str(person)] = d.centres[objs] + (landing_features(d, objs) @ truth) * sizes
    fitted = fit_landing([d])
    np.testing.assert_allclose(fitted.weights, truth, atol=1e-9)
    np.testing.assert_allclose(fitted.spread, 0, atol=1e-9)
    xy = fitted.place(d, [0, 1, 1])
    np.testing.assert_allclose(xy, [[20 + 0, 30 - 6], [60 + 0 - 6, 30 - 6], [60 + 8, 30 + 6]], atol=1e-9)
    zero = Landing(np.zeros((4, 2)), np.zeros(2))
    np.testing.assert_allclose(zero.place(d, [3, 7]), d.centres[[3, 7]])
    np.testing.assert_allclose(zero.draw(d, [3, 7], rng), d.centres[[3, 7]])


def test_saved_landing_round_trips_and_bad_files_are_refused(tmp_path):
    assert Landing.load(tmp_path) is None
    lm = Landing(np.arange(8.0).reshape(4, 2) / 10, np.array([0.3, 0.2]))
    lm.save(tmp_path)
    back = Landing.load(tmp_path)
    np.testing.assert_allclose(back.weights, lm.weights)
    np.testing.assert_allclose(back.spread, lm.spread)
    (tmp_path / "landing.json").write_text(json.dumps({"weights": [[0, 0]], "spread": [0, 0]}))
    with pytest.raises(InputError, match="landing.json"):
        Landing.load(tmp_path)
    (tmp_path / "landing.json").write_text("{")
    with pytest.raises(InputError, match="landing.json"):
        Landing.load(tmp_path)
    with pytest.raises(InputError, match="no raw fixations"):
        fit_landing([_grid()])


def test_mbr_land_picks_the_draw_nearest_the_others_and_predict_writes_landing_pixels(tmp_path, capsys, tiny):  # noqa: F811
    d = _grid()
    flat = Landing(np.zeros((4, 2)), np.zeros(2))  # no jitter: the utility is plain SS + MultiMatch
    draws = [[0, 1, 2, 3], [0, 1, 2, 3], [11, 4, 9], [0, 1, 2]]
    assert mbr_landing_index(d, draws, flat, np.random.default_rng(0)) in (0, 1)
    folder, path, model = tiny
    with pytest.raises(ValueError, match="landing"):
        decode(model, load_displays(path), "mbr_land", n=4)
    shutil.copytree(folder / "model", tmp_path / "model")
    lm = Landing(np.array([[0.1, -0.2], [0.3, 0.3], [0.0, 0.0], [0.0, 0.0]]), np.array([0.2, 0.2]))
    lm.save(tmp_path / "model")
    out = tmp_path / "pred.json"
    assert main(["oat", "predict", str(path), "-o", str(out), "--model", str(tmp_path / "model"),
                 "--decoding", "mbr_land", "--draws", "4", "--json"]) == 0
    capsys.readouterr()
    pred = json.loads(out.read_text())
    for disp in load_displays(path):
        rec = pred[disp.name]
        np.testing.assert_allclose(rec["fixations"], np.round(lm.place(disp, rec["objects"]), 1))
        assert not np.allclose(rec["fixations"], disp.centres[rec["objects"]])
    (tmp_path / "model" / "landing.json").unlink()
    assert main(["oat", "predict", str(path), "-o", str(tmp_path / "p2.json"), "--model", str(tmp_path / "model"),
                 "--decoding", "mbr_land"]) == 2
    assert "landing" in capsys.readouterr().err and not (tmp_path / "p2.json").exists()


def test_mbr_land_mm_maximises_multimatch_alone(tiny):  # noqa: F811
    """Round 5: with sequence_weight 0 the choice is the draw with the highest summed MultiMatch to the others
    (computed here by hand), which need not be mbr_land's; with no landing model the decoding is refused."""
    from seqverse.vision.oat.metrics import multimatch, sequence_score

    d = _grid()
    flat = Landing(np.zeros((4, 2)), np.zeros(2))   # no jitter: placed = pseudo = object centres
    rng = np.random.default_rng(3)
    draws = [[int(o) for o in rng.integers(0, 12, size=int(rng.integers(2, 7)))] for _ in range(8)]
    size = (d.width, d.height)

    def summed(i, w):
        return sum(w * sequence_score(draws[i], q) + (1 - w) * multimatch(d.centres[draws[i]], d.centres[q], size).mean()
                   for j, q in enumerate(draws) if j != i)

    chosen = {w: mbr_landing_index(d, draws, flat, np.random.default_rng(0), sequence_weight=w) for w in (0.0, 0.5)}
    for w, i in chosen.items():
        assert i == int(np.argmax([summed(k, w) for k in range(len(draws))]))
    assert chosen[0.0] != chosen[0.5]   # these draws tell the two utilities apart
    folder, path, model = tiny
    with pytest.raises(ValueError, match="mbr_land_mm.*landing"):
        decode(model, load_displays(path), "mbr_land_mm", n=4)
