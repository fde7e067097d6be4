"""MBR pixel refinement (round 6): the fixations move inside their objects toward the expected MultiMatch."""

import json
import shutil

import numpy as np
import pytest
from test_oat import tiny  # noqa: F401  (module fixture: a tiny model and three displays)
from test_oat_landing import _grid

from seqverse.vision.cli import main
from seqverse.vision.oat.decode import mbr_landing_gains
from seqverse.vision.oat.displays import load_displays
from seqverse.vision.oat.landing import Landing
from seqverse.vision.oat.predict import score_scanpaths
from seqverse.vision.oat.refine import (
    FINE_STEP,
    expected_multimatch,
    pseudo_people,
    refine_pixels,
    refined_landing_pixels,
    refined_top,
)


def _inside(d, objects, xy):
    b = d.boxes[np.asarray(objects)]
    return bool(np.all(xy >= b[:, :2] - 1e-9) and np.all(xy <= b[:, 2:] + 1e-9))


def test_refinement_never_lowers_the_expected_score_and_stays_inside_the_objects():
    d = _grid()
    path = [0, 1, 2, 6, 5]
    start = d.centres[path]
    rng = np.random.default_rng(0)
    evidence = [d.centres[[0, 1, 5, 6, 5]] + rng.normal(size=(5, 2)) * 8 for _ in range(6)]
    before = expected_multimatch(d, start, evidence)
    xy = refine_pixels(d, path, start, evidence)
    assert _inside(d, path, xy)
    assert expected_multimatch(d, xy, evidence) >= before
    np.testing.assert_allclose(refine_pixels(d, path, start, evidence, passes=0), start)
    assert refine_pixels(d, [], np.zeros((0, 2)), evidence).shape == (0, 2)


def test_refinement_moves_a_fixation_toward_where_the_evidence_lands():
    """Every pseudo-person fixates the same objects at the centres except the third, 0.3 box widths right of
    it: the refined third fixation moves right, the ones before it stay, and the score rises (the ones after may
    follow: MultiMatch compares the saccades, so the next saccade's vector counts too)."""
    d = _grid()
    path = [4, 5, 6, 7, 3]
    start = d.centres[path]
    target = start.copy()
    target[2, 0] += 0.3 * 40.0
    evidence = [target + np.array([0.0, dy]) for dy in (-1.0, 0.0, 1.0)]
    xy = refine_pixels(d, path, start, evidence)
    assert expected_multimatch(d, xy, evidence) > expected_multimatch(d, start, evidence) + 1e-3
    assert xy[2, 0] > start[2, 0] + 5.0
    np.testing.assert_allclose(xy[:2], start[:2])
    assert _inside(d, path, xy)


def test_the_chosen_draw_is_not_its_own_evidence():
    d = _grid()
    flat = Landing(np.zeros((4, 2)), np.zeros(2))   # pseudo-people on the centres
    chosen = [0, 1, 2]
    # the only other draw is the chosen one itself: no evidence is left, so nothing moves
    np.testing.assert_allclose(refined_landing_pixels(d, chosen, [chosen], flat, np.random.default_rng(0)),
                               d.centres[chosen])
    moved = refined_landing_pixels(d, chosen, [chosen, chosen], flat, np.random.default_rng(0))
    np.testing.assert_allclose(moved, d.centres[chosen])   # evidence identical to the start: already the best


def test_scoring_given_pixels_equals_scoring_through_the_landing_model():
    d = _grid()
    d.scanpaths = {"a": [0, 1, 5], "b": [0, 4, 5, 6]}
    d.fixations = {"a": d.centres[[0, 1, 5]] + 3.0, "b": d.centres[[0, 4, 5, 6]] - 2.0}
    lm = Landing(np.array([[0.1, -0.2], [0.3, 0.3], [0.0, 0.05], [0.0, 0.0]]), np.array([0.2, 0.2]))
    path = [0, 1, 2, 6, 5]
    through = score_scanpaths([d], [[path]], landing=lm)
    given = score_scanpaths([d], [[path]], pixels=[[np.round(lm.place(d, path), 1)]])
    assert given["multimatch"] == pytest.approx(through["multimatch"], abs=1e-12)
    other = score_scanpaths([d], [[path]], pixels=[[d.centres[path]]])
    assert other["multimatch"] != pytest.approx(through["multimatch"], abs=1e-6)


def test_predict_pixels_refined_keeps_the_objects_and_refuses_what_it_cannot_do(tmp_path, capsys, tiny):  # noqa: F811
    folder, path, model = tiny
    shutil.copytree(folder / "model", tmp_path / "model")
    lm = Landing(np.array([[0.1, -0.2], [0.3, 0.3], [0.0, 0.0], [0.0, 0.0]]), np.array([0.2, 0.2]))
    lm.save(tmp_path / "model")
    common = ["--model", str(tmp_path / "model"), "--decoding", "mbr_land_mm", "--draws", "4", "--json"]
    assert main(["oat", "predict", str(path), "-o", str(tmp_path / "landing.json"), *common]) == 0
    assert main(["oat", "predict", str(path), "-o", str(tmp_path / "refined.json"), *common,
                 "--pixels", "refined"]) == 0
    capsys.readouterr()
    plain, refined = (json.loads((tmp_path / f).read_text()) for f in ("landing.json", "refined.json"))
    for d in load_displays(path):
        assert refined[d.name]["objects"] == plain[d.name]["objects"]
        assert _inside(d, refined[d.name]["objects"], np.asarray(refined[d.name]["fixations"]).reshape(-1, 2))
    out = tmp_path / "no.json"
    assert main(["oat", "predict", str(path), "-o", str(out), "--model", str(tmp_path / "model"),
                 "--pixels", "refined"]) == 2   # greedy draws nothing to refine against
    assert "--pixels refined" in capsys.readouterr().err and not out.exists()
    (tmp_path / "model" / "landing.json").unlink()
    assert main(["oat", "predict", str(path), "-o", str(out), "--model", str(tmp_path / "model"),
                 "--decoding", "mbr", "--draws", "4", "--pixels", "refined"]) == 2
    assert "landing" in capsys.readouterr().err and not out.exists()


def test_evaluate_scores_the_predicted_pixels_not_the_object_centres(tmp_path, capsys, tiny):  # noqa: F811
    """`oat evaluate` reads the objects from the fixations (sequence score) but MultiMatch compares the pixels as
    written: the same objects at other pixels inside them give the same sequence score and another MultiMatch,
    equal to scoring those pixels directly."""
    folder, path, model = tiny
    displays = load_displays(path)
    centres = tmp_path / "centres.json"
    assert main(["oat", "predict", str(path), "-o", str(centres), "--model", str(folder / "model"), "--json"]) == 0
    capsys.readouterr()
    pred = json.loads(centres.read_text())
    moved, pixels = {}, []
    for d in displays:
        objs = pred[d.name]["objects"]
        b = d.boxes[objs]
        xy = np.round(b[:, :2] + 0.25 * (b[:, 2:] - b[:, :2]), 1)   # a quarter in from the top-left corner
        assert d.objects_of(xy) == objs
        moved[d.name] = {"fixations": xy.tolist(), "objects": objs}
        pixels.append([xy])
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    scores = {}
    for name in ("centres", "moved"):
        assert main(["oat", "evaluate", str(tmp_path / f"{name}.json"), str(path), "--json"]) == 0
        scores[name] = json.loads(capsys.readouterr().out)
    assert scores["moved"]["sequence_score"] == scores["centres"]["sequence_score"]
    assert scores["moved"]["multimatch"] != pytest.approx(scores["centres"]["multimatch"], abs=1e-6)
    direct = score_scanpaths(displays, [[pred[d.name]["objects"]] for d in displays], pixels=pixels)
    assert scores["moved"]["multimatch"] == pytest.approx(direct["multimatch"], abs=1e-12)


def test_refined_top_keeps_the_best_judged_of_the_top_draws():
    """`refined_top` returns one of the draws, inside its boxes; with one candidate it is the MultiMatch MBR's own
    choice, and with more its judged score is the highest of the candidates' (recomputed here from the seeds)."""
    d = _grid()
    lm = Landing(np.array([[0.1, -0.2], [0.3, 0.3], [0.0, 0.0], [0.0, 0.0]]), np.array([0.2, 0.2]))
    draws = [[0, 1, 2, 6], [0, 1, 5, 6, 7], [4, 5, 6], [], [0, 4, 5, 6], [0, 1, 2, 3, 7], [1, 5, 6]]
    seed = 3
    gains = mbr_landing_gains(d, draws, lm, np.random.default_rng(seed), sequence_weight=0.0)
    objects, xy = refined_top(d, draws, lm, seed, top=1)
    assert objects == draws[int(np.argmax(gains))] and _inside(d, objects, xy)
    objects, xy = refined_top(d, draws, lm, seed, top=4, landings=2)
    assert objects in draws and _inside(d, objects, xy)
    judged = {}
    for i in np.argsort(-gains, kind="stable")[:4]:
        judge = pseudo_people(d, draws, int(i), lm, np.random.default_rng((seed, 4, int(i))), 2)
        fit = pseudo_people(d, draws, int(i), lm, np.random.default_rng((seed, 3, int(i))), 2)
        start = refine_pixels(d, draws[i], lm.place(d, draws[i]), fit)
        judged[int(i)] = expected_multimatch(d, refine_pixels(d, draws[i], start, fit, step=FINE_STEP), judge)
    assert expected_multimatch(d, xy, pseudo_people(d, draws, draws.index(objects), lm,
                                                    np.random.default_rng((seed, 4, draws.index(objects))), 2)) \
        == pytest.approx(max(judged.values()), abs=1e-12)
    assert refined_top(d, [[], []], lm, seed)[0] == []


def test_predict_pixels_refined_top_writes_a_draw_at_pixels_inside_it(tmp_path, capsys, tiny):  # noqa: F811
    folder, path, model = tiny
    shutil.copytree(folder / "model", tmp_path / "model")
    Landing(np.zeros((4, 2)), np.array([0.2, 0.2])).save(tmp_path / "model")
    out = tmp_path / "top.json"
    assert main(["oat", "predict", str(path), "-o", str(out), "--model", str(tmp_path / "model"), "--decoding",
                 "mbr_land_mm", "--draws", "4", "--pixels", "refined_top", "--json"]) == 0
    capsys.readouterr()
    pred = json.loads(out.read_text())
    for d in load_displays(path):
        xy = np.asarray(pred[d.name]["fixations"]).reshape(-1, 2)
        assert _inside(d, pred[d.name]["objects"], xy) and d.objects_of(xy) == pred[d.name]["objects"]
    assert main(["oat", "predict", str(path), "-o", str(tmp_path / "no.json"), "--model", str(tmp_path / "model"),
                 "--pixels", "refined_top"]) == 2
    assert "--pixels refined_top" in capsys.readouterr().err and not (tmp_path / "no.json").exists()
