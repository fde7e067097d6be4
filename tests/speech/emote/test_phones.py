"""Round 11 (issue 24): the PocketSphinx phone front end and the model input that carries it."""

import shutil

import numpy as np
import pytest
import torch
from fake_emote_corpus import fake_voice

from seqverse.core.clikit import InputError
from seqverse.speech.emote import phones as P
from seqverse.speech.emote.corpus import (
    MEL_PER_FRAME,
    Voice,
    add_phone_tracks,
    load_split,
    pack_corpus,
    synth_festival,
)
from seqverse.speech.emote.data import LOG_FLOOR, model_input
from seqverse.speech.emote.model import EMOTE, EMOTEConfig


def test_labels_map_to_the_phone_set():
    assert P.N_PHONES == 41 and P.PHONES[P.phone_index("M")] == "M" and P.PHONES[P.phone_index("ZH")] == "ZH"
    assert P.phone_index("SIL") == P.SIL and P.phone_index("<sil>") == P.SIL
    assert P.phone_index("+SPN+") == P.NOISE and P.phone_index("+NSN+") == P.NOISE


@pytest.mark.skipif(shutil.which("festival") is None, reason="festival not installed")
def test_phone_loop_finds_the_bilabials_of_a_diphone_voice(tmp_path):
    """kal (festival's LPC diphones, a training family) says a sentence full of p/b/m; the recogniser, trained on
    human speech, must put a P/B/M label within 30 ms of most of them, and not call the whole sentence bilabial."""
    (audio, segs), = synth_festival(Voice("kal", "festival", "kal_diphone"), ["Bob might buy more maps."], tmp_path)
    n_rows = int(np.ceil(len(audio) / 16000 * 25)) * MEL_PER_FRAME
    track = P.phone_track(audio, n_rows)
    assert track.shape == (n_rows,) and track.dtype == np.int8
    bilabial = {P.phone_index(p) for p in ("P", "B", "M")}
    rows = np.flatnonzero(np.isin(track, list(bilabial)))
    truth = [(s, e) for s, e, p in segs if p in ("p", "b", "m")]
    assert len(truth) == 7
    found = [any(s - 0.03 <= r / 100 <= e + 0.03 for r in rows) for s, e in truth]
    assert sum(found) >= 5, (found, [P.PHONES[i] for i in track[::4]])
    assert 0 < len(rows) < 0.6 * n_rows


def test_model_input_pads_with_floor_and_silence():
    mel = np.random.default_rng(0).normal(size=(8, 80)).astype(np.float32)
    track = np.array([P.phone_index("M")] * 8, np.int8)
    x = model_input(mel, track, 12)
    assert x.shape == (12, 80 + P.N_PHONES)
    np.testing.assert_array_equal(x[:8, :80], mel)
    assert (x[8:, :80] == LOG_FLOOR).all()
    assert (x[:8, 80:].argmax(1) == P.phone_index("M")).all() and (x[8:, 80:].argmax(1) == P.SIL).all()
    assert x[:, 80:].sum(1).tolist() == [1.0] * 12
    assert model_input(mel, None, 12).shape == (12, 80)


def test_models_without_the_front_end_ignore_the_phone_columns():
    torch.manual_seed(0)
    model = EMOTE(EMOTEConfig(use_prior=False)).eval()
    mel = torch.randn(1, 32, 80)
    phones = torch.from_numpy(P.one_hot(np.random.default_rng(1).integers(0, P.N_PHONES, 32)))[None]
    with torch.no_grad():
        plain = model(mel, torch.tensor([1]), torch.tensor([0]), torch.tensor([0]))
        wide = model(torch.cat([mel, phones], -1), torch.tensor([1]), torch.tensor([0]), torch.tensor([0]))
    assert torch.equal(plain, wide)


def test_front_end_model_reads_the_phones_and_refuses_a_bare_log_mel():
    torch.manual_seed(0)
    model = EMOTE(EMOTEConfig(use_prior=False, phone_frontend=True)).eval()
    torch.nn.init.normal_(model.head.weight)   # the head starts at zero: make the output depend on the input
    mel = torch.randn(1, 32, 80)
    args = (torch.tensor([1]), torch.tensor([0]), torch.tensor([0]))
    a = torch.from_numpy(P.one_hot(np.full(32, P.SIL)))[None]
    b = torch.from_numpy(P.one_hot(np.full(32, P.phone_index("M"))))[None]
    with torch.no_grad():
        assert not torch.allclose(model(torch.cat([mel, a], -1), *args), model(torch.cat([mel, b], -1), *args))
        with pytest.raises(ValueError, match="emote corpus --phones"):
            model(mel, *args)


def test_corpus_phone_tracks_line_up_with_the_log_mel(tmp_path):
    for name, split in (("a", "train"), ("b", "val"), ("c", "test")):
        fake_voice(tmp_path, name, split, 2)
    pack_corpus(tmp_path)
    assert all(u.track is None for u in load_split(tmp_path, "val"))
    summary = add_phone_tracks(tmp_path, progress=False)
    assert set(summary) == {"train", "val", "test"}
    for u in load_split(tmp_path, "val"):
        assert u.track is not None and len(u.track) == len(u.mel)
    np.save(tmp_path / "val.phones.npy", np.zeros(3, np.int8))   # stale: another corpus's rows
    with pytest.raises(InputError, match="val.phones.npy: 3 rows"):
        load_split(tmp_path, "val")
    add_phone_tracks(tmp_path, progress=False)   # rebuilt, because it no longer matches
    assert len(np.load(tmp_path / "val.phones.npy")) == sum(len(u.mel) for u in load_split(tmp_path, "val"))


def test_evaluating_a_front_end_model_on_a_corpus_without_phones_names_the_fix(tmp_path):
    from seqverse.speech.emote.evaluate import evaluate
    from seqverse.speech.emote.model import save_pretrained

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    corpus.mkdir()
    for name, split in (("a", "train"), ("b", "val"), ("c", "test")):
        fake_voice(corpus, name, split, 2)
    pack_corpus(corpus)
    save_pretrained(EMOTE(EMOTEConfig(use_prior=False, phone_frontend=True)), run / "ph" / "model")
    with pytest.raises(InputError, match="ph reads recognised phones.*--phones"):
        evaluate(corpus, run, "val", systems=["ph"], progress=False)
