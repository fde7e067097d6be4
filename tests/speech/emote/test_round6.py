"""Round 6 (issue 24): the wide training voice set and the LVE-by-frame-class diagnosis."""

from pathlib import Path

import numpy as np
import pytest
from script_module import load_script

from seqverse.speech.emote.corpus import HELD_OUT_FAMILIES, KLATT_VARIANTS, default_voices, wide_extra_voices
from seqverse.speech.emote.evaluate import CLOSED_MM


def test_default_voice_set_is_unchanged():
    v = default_voices()
    assert [x.split for x in v].count("train") == 10 and len(v) == 15
    assert {x.name for x in v if x.split == "test"} == {"slt_hts", "es_scot_klatt", "es_gbcwmd_m7"}


def test_wide_voices_train_only_and_exclude_test_and_validation_families():
    wide = default_voices(wide=True)
    default = default_voices()
    assert wide[:len(default)] == default                    # validation and test voices exactly as before
    extra = wide_extra_voices()
    assert len(extra) >= 40 and len({x.name for x in wide}) == len(wide)
    assert all(x.split == "train" for x in extra)
    held = [x for x in default if x.split != "train"]
    for x in extra:
        spec = x.voice.lower()
        assert not any(f in spec for f in HELD_OUT_FAMILIES), x
        assert x.engine == "festival" or spec.split("+")[1] not in {k.lower() for k in KLATT_VARIANTS}, x
        assert all(spec != h.voice.lower() or (x.pitch, x.rate, x.formant) != (h.pitch, h.rate, h.formant) for h in held)
    assert {x.voice for x in extra if x.engine == "festival"} == {"kal_diphone", "ked_diphone", "rab_diphone"}


def test_klatt_variant_list_matches_espeak_data():
    vdir = next((p for p in (Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"),
                             Path("/usr/share/espeak-ng-data/voices/!v")) if p.is_dir()), None)
    if vdir is None:
        pytest.skip("espeak-ng variant files not installed")
    uses_klatt = {f.name for f in vdir.iterdir() if f.is_file() and "klatt" in f.read_text(errors="replace").lower()}
    used = {x.voice.split("+")[1] for x in wide_extra_voices() if x.engine == "espeak"}
    assert not used & uses_klatt


def _diagnosis():
    return load_script("benchmarks/speech/emote/diagnose_lve_frames.py")


def test_frame_classes_follow_the_definitions():
    D = _diagnosis()
    # 25 fps: frame k has its centre at (k + 0.5) / 25 s; 20 frames
    phones = [(0.0, 0.2, "_", "sil"), (0.2, 0.32, "a", "AA"), (0.32, 0.4, "m", "PBM"), (0.4, 0.6, "i", "IY")]
    opening = np.full(20, 10.0)
    opening[9] = CLOSED_MM - 0.5          # a closed frame inside the /m/ (frames 8-9)
    opening[2] = CLOSED_MM                # closed in silence: still "closed" (priority)
    cls = D.frame_classes(opening, phones)
    names = [D.CLASSES[c] for c in cls]
    assert names[2] == "closed" and names[9] == "closed"
    assert names[6:9] == ["bilabial"] * 3 and names[10:12] == ["bilabial"] * 2   # /m/ +-2 frames
    assert names[5] == "speech" and names[12:15] == ["speech"] * 3
    assert names[0] == names[1] == names[3] == "silence" and names[15:] == ["silence"] * 5


def test_late_closure_only_in_stage_two():
    from seqverse.speech.emote.train import closure_stages

    assert closure_stages(True) == (True, True)
    assert closure_stages(True, late=True) == (False, True)
    assert closure_stages(False, late=True) == (False, False)



def test_missing_festival_voice_is_named_with_its_package(tmp_path):
    from seqverse.speech.emote.corpus import festival_voice_problem, missing_festival_voices

    root = tmp_path / "voices"
    for lang, name in (("english", "kal_diphone"), ("english", "ked_diphone"), ("us", "cmu_us_slt_arctic_hts")):
        (root / lang / name).mkdir(parents=True)
    assert missing_festival_voices(default_voices(), roots=(root,)) == []
    assert festival_voice_problem(default_voices(), roots=(root,)) is None
    assert missing_festival_voices(default_voices(wide=True), roots=(root,)) == ["rab_diphone"]
    problem = festival_voice_problem(default_voices(wide=True), roots=(root,))
    assert problem.startswith("festival voice(s) not installed: rab_diphone (package festvox-rablpc16k")
    (root / "english" / "rab_diphone").mkdir()
    assert festival_voice_problem(default_voices(wide=True), roots=(root,)) is None
