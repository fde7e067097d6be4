"""Round 9 (issue 24): the out-of-family validation split val_ood."""

import numpy as np
from fake_emote_corpus import fake_voice

from seqverse.speech.emote.corpus import (
    HELD_OUT_FAMILIES,
    default_voices,
    festival_voice_problem,
    ood_val_voices,
    pack_corpus,
)


def test_ood_voices_are_a_family_no_other_split_uses():
    ood = ood_val_voices()
    assert {v.split for v in ood} == {"val_ood"} and len(ood) == 4
    assert all(v.engine == "festival" and v.voice.endswith("_mbrola") for v in ood)
    others = default_voices(wide=True)
    assert not any("mbrola" in v.voice for v in others)
    assert not any(f in v.voice for v in ood for f in HELD_OUT_FAMILIES)
    assert {v.name for v in ood}.isdisjoint(v.name for v in others)


def test_missing_mbrola_voice_names_its_contrib_package(tmp_path):
    root = tmp_path / "voices"
    for name in ("kal_diphone", "ked_diphone", "rab_diphone", "us1_mbrola", "us2_mbrola", "us3_mbrola"):
        (root / "english" / name).mkdir(parents=True)
    (root / "us" / "cmu_us_slt_arctic_hts").mkdir(parents=True)
    problem = festival_voice_problem(default_voices(wide=True) + ood_val_voices(), roots=(root,))
    assert problem.startswith("festival voice(s) not installed: en1_mbrola (package festvox-en1 (contrib")


def test_pack_adds_val_ood_only_when_its_voices_exist(tmp_path):
    for name, split in (("a", "train"), ("b", "val"), ("c", "test")):
        fake_voice(tmp_path, name, split, 2)
    assert set(pack_corpus(tmp_path)) == {"train", "val", "test"}
    before = {s: dict(np.load(tmp_path / f"{s}.npz")) for s in ("train", "val", "test")}
    fake_voice(tmp_path, "mb_us1", "val_ood", 3)
    summary = pack_corpus(tmp_path)
    assert summary["val_ood"]["utterances"] == 3 and summary["val_ood"]["voices"] == ["mb_us1"]
    for s, arrays in before.items():   # the other splits are unchanged by the new one
        after = np.load(tmp_path / f"{s}.npz")
        assert all(np.array_equal(arrays[k], after[k]) for k in arrays)


def test_evaluate_on_a_corpus_without_val_ood_is_one_clear_error(tmp_path, capsys):
    from seqverse.speech.cli import main

    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.json").write_text("[]")
    run = tmp_path / "run"
    run.mkdir()
    assert main(["emote", "evaluate", str(tmp_path), str(run), "--split", "val_ood"]) == 2
    err = capsys.readouterr().err
    assert "no split val_ood" in err and "--val-ood" in err and str(tmp_path) in err
