"""The ensemble (a mixture of OATs): its incremental decoding against the teacher-forced reference, and
an ensemble of copies of one model decoding exactly as that model."""

import copy
import json

import pytest
import torch
from test_oat import TINY, tiny  # noqa: F401  (module fixture: a tiny model and three displays)

from seqverse.vision.oat.data import display_tensors
from seqverse.vision.oat.decode import decode, scanpath_log_probs
from seqverse.vision.oat.displays import load_displays
from seqverse.vision.oat.ensemble import OATEnsemble
from seqverse.vision.oat.model import OAT, OATConfig
from seqverse.vision.oat.position import learn_position_table


def _other(model):
    """A second member: same layout code, other weights."""
    torch.manual_seed(7)
    other = OAT(OATConfig(**TINY), position_table=model.position_table)
    return other.eval()


def test_copies_of_one_model_decode_as_that_model(tiny):  # noqa: F811
    folder, path, model = tiny
    batch = display_tensors(load_displays(path), True)
    pair = OATEnsemble([model, copy.deepcopy(model)]).eval()
    assert pair.generate(batch) == model.generate(batch)
    for t in (0.7, 1.0):
        a = pair.generate(batch, sample=True, generator=torch.Generator().manual_seed(3), temperature=t)
        b = model.generate(batch, sample=True, generator=torch.Generator().manual_seed(3), temperature=t)
        assert a == b


def _teacher_forced_probs(model, d, prefix):
    """Reference: one member run on the whole prefix at once (no cache), with generation's masks."""
    from seqverse.vision.oat.data import collate

    batch = collate([d], [(0, list(prefix))], True)
    with torch.no_grad():
        logits = model(batch)
    n = batch["obj_rows"].shape[1]
    logits[:, :, n + 1] = -1e9
    logits[:, 0, n] = -1e9
    return torch.softmax(logits, -1)[0]  # (T, N + 2): position t predicts prefix[t]


def test_mixture_step_equals_the_mean_of_teacher_forced_softmaxes(tiny):  # noqa: F811
    """The ensemble's cached step-by-step distribution equals the members' mean teacher-forced softmax at
    every position; the mixture's teacher-forced log-probabilities (``forward``) agree with both."""
    folder, path, model = tiny
    members = (model, _other(model))
    d = load_displays(path)[0]
    prefix = [3, 5, 2]
    ref = torch.stack([_teacher_forced_probs(m, d, prefix) for m in members]).mean(0)
    batch = display_tensors([d], True)
    states = [m.start_decoding(batch) for m in members]
    inputs = torch.tensor([[-1]])
    with torch.no_grad():
        for t, obj in enumerate(prefix):
            step = torch.stack([torch.softmax(m.next_logits(s, batch, inputs), -1)
                                for m, s in zip(members, states)]).mean(0)[0]
            torch.testing.assert_close(step, ref[t], atol=1e-5, rtol=1e-4)
            inputs = torch.cat([inputs, torch.tensor([[obj]])], 1)
    ens = OATEnsemble(list(members)).eval()
    fixations = sum(float(torch.log(ref[t, obj])) for t, obj in enumerate(prefix))
    end = float(torch.log(ref[len(prefix), d.n_objects]))
    assert scanpath_log_probs(ens, d, [prefix])[0] == pytest.approx(fixations + end, abs=1e-4)


def test_ensemble_decodes_with_every_rule_and_refuses_mixed_members(tiny):  # noqa: F811
    folder, path, model = tiny
    displays = load_displays(path)
    ens = OATEnsemble([model, _other(model)]).eval()
    for rule in ("greedy", "mbr", "likelihood"):
        paths = decode(ens, displays, rule, n=4, seed=1)
        assert len(paths) == len(displays) and all(0 < len(p) <= ens.config.max_len for p in paths)
    layout_only = OAT(OATConfig(**{**TINY, "appearance": False}), position_table=learn_position_table(8, 6, iterations=5))
    with pytest.raises(ValueError, match="appearance"):
        OATEnsemble([model, layout_only])


def test_predict_takes_comma_joined_checkpoints(tmp_path, capsys, tiny):  # noqa: F811
    """`oat predict --model A,B` decodes with the ensemble of A and B; a missing or non-OAT member is one
    error line naming it, exit 2, no output file."""
    from seqverse.vision.cli import main

    folder, path, model = tiny
    other_dir = tmp_path / "other"
    _other(model).save_pretrained(other_dir)
    out = tmp_path / "pred.json"
    spec = f"{folder / 'model'},{other_dir}"
    assert main(["oat", "predict", str(path), "-o", str(out), "--model", spec, "--decoding", "mbr", "--draws", "4",
                 "--json"]) == 0
    capsys.readouterr()
    displays = load_displays(path)
    ens = OATEnsemble.from_pretrained([folder / "model", other_dir])
    want = decode(ens, displays, "mbr", n=4, seed=0)
    assert [json.loads(out.read_text())[d.name]["objects"] for d in displays] == want
    bad = tmp_path / "bad.json"
    (tmp_path / "empty").mkdir()
    for spec, msg in ((f"{folder / 'model'},{tmp_path / 'nope'}", "nope: no such directory"),
                      (f"{folder / 'model'},{tmp_path / 'empty'}", "empty: not an OAT checkpoint"),
                      (f"{folder / 'model'},", "an empty folder name")):
        assert main(["oat", "predict", str(path), "-o", str(bad), "--model", spec]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
        assert not bad.exists()
