"""OAT: metrics against hand-computed values, the position code, the decoder's masking and caching,
display validation, and the CLI's predict -> evaluate -> plot round trip with bad-input errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seqverse.vision.cli import main
from seqverse.vision.oat import metrics
from seqverse.vision.oat.data import collate, display_tensors, examples, oat_loss
from seqverse.vision.oat.displays import load_displays
from seqverse.vision.oat.model import OAT, OATConfig
from seqverse.vision.oat.position import (
    gaussian_targets,
    learn_position_table,
    position_code_loss,
    position_code_loss_reference,
)

torch.set_num_threads(1)  # the test machine's cores are shared; threads only contend
HUMAN = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "oat" / "amazon_covers_1-70.json"
TINY = dict(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=2, dim_feedforward=32, max_len=8,
            table_size=8, dropout=0.0)


# ---- metrics -------------------------------------------------------------------------------------
def test_sequence_score_hand_computed():
    assert metrics.sequence_score([1, 2, 3], [1, 3]) == pytest.approx(2 / 3)
    assert metrics.sequence_score([1, 2, 3], [3, 2, 1]) == pytest.approx(1 / 3)
    assert metrics.sequence_score([4, 4], [4, 4]) == 1.0
    assert metrics.sequence_score([1], [2, 3, 4, 5]) == 0.0


def test_levenshtein_hand_computed():
    assert metrics.levenshtein([1, 2, 3], [1, 3]) == 1
    assert metrics.levenshtein([1, 2, 3, 4], [2, 3, 5]) == 2
    assert metrics.levenshtein([], [7, 8]) == 2


def test_behaviour_and_delta_hand_computed():
    # runs 5,5 | 3 | 5 | 7: searches 5,3,7; one refixation; one revisit (5); ends on the target 7
    b = metrics.behaviour([5, 5, 3, 5, 7], target=7)
    np.testing.assert_allclose(b, [1, 5, 3 / 5, 1 / 5, 1 / 5])
    assert metrics.behaviour([5, 3], target=7)[0] == 0
    pred, human = np.array([1, 10, 0.5, 0.25, 0.25]), np.array([1, 5, 0.5, 0.5, 0.0])
    assert metrics.behavioural_delta(pred, human) == pytest.approx((0 + 1 + 0 + 0.5) / 4)  # 0-valued measure left out


def test_multimatch_identical_is_one_and_differs_otherwise():
    a = np.array([[100, 100], [300, 120], [500, 400], [200, 500]], float)
    assert metrics.multimatch(a, a, (800, 600)) == pytest.approx(np.ones(4), abs=1e-6)
    b = a[::-1].copy()
    assert metrics.multimatch(a, b, (800, 600)).mean() < 0.99


def test_multimatch_compares_with_raw_fixations_as_official_code():
    """Predictions on object centres vs the person's raw pixels; the centres-only variant kept beside it."""
    from seqverse.vision.oat.displays import Display
    from seqverse.vision.oat.predict import inter_human, score_scanpaths

    boxes = np.array([[0, 0, 100, 100], [100, 0, 200, 100], [0, 100, 100, 200], [100, 100, 200, 200]], float)
    d = Display(name="d", width=200, height=200, boxes=boxes, target=3, grid=(2, 2))
    on_centres = np.array([[50, 50], [150, 50], [50, 150], [150, 150]], float)
    off_centre = on_centres + np.array([[-30, 20], [25, -35], [40, 10], [-20, -40]], float)
    for person, fix in (("a", on_centres), ("b", off_centre)):
        d.fixations[person], d.scanpaths[person] = fix, d.objects_of(fix)
    assert d.scanpaths["a"] == d.scanpaths["b"] == [0, 1, 2, 3]
    row = score_scanpaths([d], [[[0, 1, 2, 3]]])
    person_a = metrics.multimatch(on_centres, on_centres, (200, 200)).mean()
    person_b = metrics.multimatch(on_centres, off_centre, (200, 200)).mean()
    assert person_a == pytest.approx(1.0, abs=1e-6) and person_b < 0.99
    assert row["multimatch"] == pytest.approx((person_a + person_b) / 2)
    assert row["multimatch_centres"] == pytest.approx(1.0, abs=1e-6)
    ceiling = inter_human([d])
    assert ceiling["multimatch"] == pytest.approx((person_a + person_b) / 2)
    assert ceiling["sequence_score"] == 1.0


# ---- position code ---------------------------------------------------------------------------------
def test_position_loss_matches_reference_and_learns_gaussian():
    W = torch.randn(6, 9, generator=torch.Generator().manual_seed(1))
    assert position_code_loss(W) == pytest.approx(float(position_code_loss_reference(W)), rel=1e-5)
    table = learn_position_table(8, 30, iterations=300, lr=0.05)
    Wn = torch.nn.functional.normalize(table, dim=1)
    assert (Wn @ Wn.T - gaussian_targets(8)).abs().max() < 0.05  # cosine follows exp(-d^2 / 2 sigma^2), sigma 2
    norms = table.norm(dim=1)
    assert (norms.std() / norms.mean()) < 0.05  # norm-equalising loss


# ---- fixtures --------------------------------------------------------------------------------------
def _write_displays(folder: Path, n: int = 3, people: int = 2) -> Path:
    from PIL import Image, ImageDraw

    from seqverse.vision.oat import synth

    rng = np.random.default_rng(0)
    products = synth.make_products(12)
    boxes = synth.grid_layout(4, 2)
    img = Image.new("RGB", (synth.WIDTH, synth.HEIGHT), (200, 200, 200))
    draw = ImageDraw.Draw(img)
    for p, b in zip(products, boxes):
        synth.draw_product(draw, p, b)
    img.save(folder / "shelf.png")
    objects = [{"xmin": float(b[0]), "xmax": float(b[2]), "ymin": float(b[1]), "ymax": float(b[3])} for b in boxes]
    recs = {}
    for k in range(n):
        t = k + 1
        fix = {str(i): synth.simulate_search(boxes, products[:8], t, rng)[1].tolist() for i in range(people)}
        recs[f"d{k}.jpg"] = {"size": {"width": synth.WIDTH, "height": synth.HEIGHT}, "ground_truth": [objects[t]],
                             "target": "t.png", "grid": [4, 2], "image": "shelf.png", "objects": objects,
                             "fixations": fix}
    path = folder / "displays.json"
    path.write_text(json.dumps(recs))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oat")
    path = _write_displays(folder)
    torch.manual_seed(0)
    model = OAT(OATConfig(**TINY), position_table=learn_position_table(8, 6, iterations=20))
    model.save_pretrained(folder / "model", half=True)
    return folder, path, model.eval()


# ---- model -----------------------------------------------------------------------------------------
def test_end_of_search_is_masked_at_step_one(tiny):
    folder, path, model = tiny
    displays = load_displays(path)
    batch = display_tensors(displays, True)
    N = batch["obj_rows"].shape[1]

    class EndAlways(torch.nn.Module):  # a head that always prefers the target token (end) by far
        def forward(self, memory, decoded):
            logits = torch.zeros(decoded.shape[0], decoded.shape[1], memory.shape[1] + 1)
            logits[..., N] = 100.0
            logits[..., 0] = 1.0
            return logits

    head = model.head
    model.head = EndAlways()
    try:
        paths = model.generate(batch)
        sampled = model.generate(batch, sample=True, generator=torch.Generator().manual_seed(0))
    finally:
        model.head = head
    assert paths == [[0]] * len(displays)  # one fixation, then the end
    assert all(len(p) == 1 for p in sampled)


def test_cached_decoding_matches_full_decoder(tiny):
    folder, path, model = tiny
    batch = display_tensors(load_displays(path), True)
    assert model.generate(batch, cached=True) == model.generate(batch, cached=False)
    memory, pad, app = model.encode(batch)
    inputs = torch.tensor([[-1, 3, 5, 2]] * len(batch["target"]))
    x = model.decoder_tokens(batch, app, inputs)
    causal = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    full = model.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=pad)
    cache = [[] for _ in model.decoder.layers]
    steps = [model._decode_step_cached(x[:, t : t + 1], cache, memory, pad) for t in range(4)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_teacher_forcing_masks_padding_objects_and_trains(tiny):
    folder, path, model = tiny
    displays = load_displays(path)
    displays[0].boxes = displays[0].boxes[:6]  # a smaller display in the batch
    displays[0].crops = displays[0].crops[:6]
    displays[0].scanpaths = {"a": [s for s in displays[0].scanpaths["0"] if s < 6] or [0]}
    batch = collate(displays, examples(displays), True)
    m = OAT(OATConfig(**TINY), position_table=model.position_table)
    logits = m(batch)
    first = (batch["row_display"] == 0).nonzero()[0, 0]
    assert (logits[first, :, 6:8] < -1e8).all()  # padding objects of the smaller display
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    before = float(oat_loss(m, batch).detach())
    for _ in range(12):
        opt.zero_grad()
        oat_loss(m, batch).backward()
        opt.step()
    assert float(oat_loss(m, batch).detach()) < before - 0.2


# ---- displays and CLI ------------------------------------------------------------------------------
def _bad(tmp_path, name, mutate, capsys, tiny):
    folder, path, _ = tiny
    data = json.loads(path.read_text())
    for rec in data.values():
        rec["image"] = str(folder / "shelf.png")
    mutate(data)
    bad = tmp_path / name
    bad.write_text(json.dumps(data) if not isinstance(data, str) else data)
    out = tmp_path / "out.json"
    code = main(["oat", "predict", str(bad), "-o", str(out), "--model", str(folder / "model")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and not out.exists()
    return err


def test_bad_inputs_name_the_display(tmp_path, capsys, tiny):
    folder, path, _ = tiny
    bad = tmp_path / "broken.json"
    bad.write_text('{"d0.jpg": {"size": ')
    out = tmp_path / "out.json"
    assert main(["oat", "predict", str(bad), "-o", str(out), "--model", str(folder / "model")]) == 2
    err = capsys.readouterr().err
    assert "malformed JSON" in err and "broken.json" in err and not out.exists()

    def outside(d):
        d["d1.jpg"]["objects"][2]["xmax"] = 99999

    assert "d1.jpg" in _bad(tmp_path, "outside.json", outside, capsys, tiny)
    assert "outside" in _bad(tmp_path, "outside2.json", outside, capsys, tiny)

    def empty(d):
        d["d2.jpg"]["objects"] = []

    err = _bad(tmp_path, "empty.json", empty, capsys, tiny)
    assert "d2.jpg" in err and "empty display" in err

    def missing_crop(d):
        for k, o in enumerate(d["d0.jpg"]["objects"]):
            o["crop"] = str(folder / f"nope{k}.png")

    err = _bad(tmp_path, "crop.json", missing_crop, capsys, tiny)
    assert "d0.jpg" in err and "nope0.png" in err


def test_predict_evaluate_plot_round_trip(tmp_path, capsys, tiny):
    folder, path, model = tiny
    out = tmp_path / "pred.json"
    assert main(["oat", "predict", str(path), "-o", str(out), "--model", str(folder / "model"), "--samples", "3",
                 "--json"]) == 0
    capsys.readouterr()
    pred = json.loads(out.read_text())
    displays = load_displays(path)
    assert set(pred) == {d.name for d in displays}
    for d in displays:
        rec = pred[d.name]
        assert len(rec["samples"]) == 3 and len(rec["fixations"]) >= 1
        np.testing.assert_allclose(rec["fixations"], np.round(d.centres[rec["objects"]], 1))
    assert (out.stat().st_mode & 0o777) == 0o644
    assert main(["oat", "evaluate", str(out), str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 <= res["sequence_score"] <= 1 and 0 <= res["multimatch"] <= 1 and res["displays"] == 3
    assert main(["oat", "plot", str(path), str(out), "-o", str(tmp_path / "png"), "--limit", "2", "--json"]) == 0
    assert len(list((tmp_path / "png").glob("*.png"))) == 2
    from seqverse.vision.oat.decode import decode

    mbr = tmp_path / "mbr.json"
    assert main(["oat", "predict", str(path), "-o", str(mbr), "--model", str(folder / "model"), "--decoding", "mbr",
                 "--draws", "4", "--json"]) == 0
    want = decode(OAT.from_pretrained(folder / "model"), displays, "mbr", n=4, seed=0)
    assert [json.loads(mbr.read_text())[d.name]["objects"] for d in displays] == want


def test_fixations_map_to_boxes_then_nearest_centre(tiny):
    d = load_displays(tiny[1])[0]
    x0, y0, x1, y1 = d.boxes[3]
    assert d.objects_of([[(x0 + x1) / 2, (y0 + y1) / 2], [1, 1]]) == [3, 0]


@pytest.mark.skipif(not HUMAN.is_file(), reason="human scanpaths not on this machine (../shared/data/oat)")
def test_human_split_by_collage_is_fixed_and_disjoint():
    from seqverse.vision.oat.human import load_human

    data = load_human(HUMAN)
    names = {k: {d.name for d in v} for k, v in data.items()}
    assert [len(names[k]) for k in ("train", "valid", "test")] == [50, 10, 10]
    assert not (names["train"] & names["test"]) and not (names["valid"] & names["test"])
    assert "7.jpg" in names["test"] and "3.jpg" in names["valid"]
    d = data["test"][0]
    assert d.crops is None and d.n_objects == 84 and len(d.scanpaths) == 6



def test_human_cross_validation_folds_hold_out_every_collage_once():
    from seqverse.vision.oat.human import FOLDS, split_of

    names = [f"{k}.jpg" for k in range(1, 71)]
    assert [split_of(n) for n in names] == [split_of(n, 0) for n in names]  # fold 0 is the fixed split
    tested = [n for f in range(FOLDS) for n in names if split_of(n, f) == "test"]
    assert sorted(tested) == sorted(names)  # every collage is a test collage exactly once
    for f in range(FOLDS):
        splits = [split_of(n, f) for n in names]
        assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (50, 10, 10)
    assert split_of("4.jpg", 4) == "test" and split_of("7.jpg", 4) == "valid"
    with pytest.raises(ValueError, match="fold 7"):
        split_of("1.jpg", 7)

def test_paper_configuration_and_layout_only_mode():
    cfg = OATConfig()  # the official sizes: d 512, 4 heads, 4 + 4 layers, feed-forward 512, 2 object heads
    m = OAT(cfg, position_table=torch.randn(16, 86))
    assert (cfg.d_model, cfg.n_heads, len(m.encoder.layers), len(m.decoder.layers)) == (512, 4, 4, 4)
    assert m.cnn.fc.out_features == 256 and m.head.readout.in_features == 2
    assert 17e6 < sum(p.numel() for p in m.parameters()) < 19e6
    lo = OAT(OATConfig(**TINY, appearance=False), position_table=torch.randn(8, 6))
    assert not hasattr(lo, "cnn")  # layout-only: no CNN, one learned appearance vector


# ---- decoding (oat/decode.py) ------------------------------------------------------------------------
def test_mbr_choice_equals_all_pairs_reference():
    from seqverse.vision.oat.decode import mbr_index, mbr_index_reference

    assert mbr_index([[1, 2, 3], [9], [1, 2, 3], [1, 2]]) == 0  # the repeated, central draw
    assert mbr_index([[4]]) == 0
    rng = np.random.default_rng(0)
    for _ in range(30):  # duplicates are common in real draws: the fast path scores each once
        pool = [list(rng.integers(0, 5, rng.integers(0, 5))) for _ in range(4)]
        draws = [pool[i] for i in rng.integers(0, 4, rng.integers(1, 9))]
        assert mbr_index(draws) == mbr_index_reference(draws)
        overlap = lambda a, b: 1.0 if a == b else len(set(a) & set(b)) / (1 + len(set(a) | set(b)))  # noqa: E731
        assert mbr_index(draws, overlap) == mbr_index_reference(draws, overlap)


def test_scanpath_log_probs_normalise_over_every_path(tiny):
    """With max_len 2 the generator's paths are [a] + end and [a, b] (cut): their probabilities sum to 1,
    so the scorer applies generation's masks (end not at step 1, never PAD) and the cut rule."""
    from seqverse.vision.oat.decode import scanpath_log_probs

    folder, path, model = tiny
    d = load_displays(path)[0]
    n = d.n_objects
    old = model.config.max_len
    model.config.max_len = 2
    try:
        paths = [[a] for a in range(n)] + [[a, b] for a in range(n) for b in range(n)]
        total = np.exp(scanpath_log_probs(model, d, paths)).sum()
    finally:
        model.config.max_len = old
    assert total == pytest.approx(1.0, abs=1e-4)


def test_decodings_return_one_path_per_display_and_cold_sampling_is_greedy(tiny):
    from seqverse.vision.oat.decode import decode
    from seqverse.vision.oat.train import predict_objects

    folder, path, model = tiny
    displays = load_displays(path)
    greedy = decode(model, displays, "greedy")
    cold = [p[0] for d in displays for p in [predict_objects(model, [d], sample=True, n=1, temperature=1e-4)[0]]]
    assert cold == greedy
    for rule in ("mbr", "mbr_mm", "likelihood"):
        paths = decode(model, displays, rule, n=6, seed=3)
        assert len(paths) == len(displays) and all(0 < len(p) <= model.config.max_len for p in paths)
    with pytest.raises(ValueError, match="unknown decoding"):
        decode(model, displays, "beam")


@pytest.mark.slow
def test_extra_training_data_leaves_every_other_split_identical(tmp_path):
    """make-displays --extra-train-people/--extra-train-targets: more training scanpaths and displays from a
    second random stream; validation and test files are byte-identical, the first people's scanpaths too."""
    from seqverse.vision.oat.synth import SynthSpec, make_displays

    base = dict(n_layouts=6, targets_per_layout=2, people=2, heldout_layouts=(5,), valid_layouts=(4,))
    make_displays(tmp_path / "a", SynthSpec(**base))
    counts = make_displays(tmp_path / "b", SynthSpec(**base, extra_train_people=3, extra_train_targets=2))
    for split in counts:
        if split != "train":
            assert (tmp_path / "a" / f"{split}.json").read_bytes() == (tmp_path / "b" / f"{split}.json").read_bytes()
    a = json.loads((tmp_path / "a" / "train.json").read_text())
    b = json.loads((tmp_path / "b" / "train.json").read_text())
    assert set(a) < set(b) and len(b) > len(a)
    for name, rec in a.items():
        assert [b[name]["fixations"][p] for p in rec["fixations"]] == list(rec["fixations"].values())
        assert len(b[name]["fixations"]) == 5
    held = SynthSpec().heldout_targets
    assert all(rec["target_product"] not in held for rec in b.values())


def test_training_continues_from_init_weights(tiny, tmp_path):
    """train_oat(init=...) starts from the given model (oat train --init): at a vanishing learning rate the
    selected weights are the initial ones, not a fresh random initialisation."""
    from seqverse.vision.oat.train import train_oat

    folder, path, model = tiny
    displays = load_displays(path)
    train_oat(displays, displays, tmp_path / "run", epochs=1, lr=1e-12, progress=False, init=model)
    again = OAT.from_pretrained(tmp_path / "run" / "best")
    assert again.config == model.config
    for (k, v), w in zip(model.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(w, v, atol=1e-6, rtol=0, msg=k)


def test_train_fold_needs_the_human_file(tmp_path, capsys, tiny):
    _, path, _ = tiny
    code = main(["oat", "train", "--train", str(path), "--valid", str(path), "--fold", "3", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--fold" in err and "--human" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not HUMAN.is_file(), reason="human scanpaths not on this machine (../shared/data/oat)")
def test_train_refuses_to_resume_a_run_of_another_fold(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "human_split.json").write_text('{"fold": 0}\n')
    code = main(["oat", "train", "--human", str(HUMAN), "--fold", "2", "-o", str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "another fold" in err and "--fold 2" in err
    assert sorted(p.name for p in run.rglob("*")) == ["best", "human_split.json"]
    (run / "best" / "human_split.json").write_text("{broken")
    assert main(["oat", "train", "--human", str(HUMAN), "--fold", "2", "-o", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "human_split.json: not a valid fold record" in err
