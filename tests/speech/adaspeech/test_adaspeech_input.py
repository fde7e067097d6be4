"""Bad input to AdaSpeech: clear messages, resampling, text normalisation, no NaN, no crash."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqverse.core.clikit import InputError
from seqverse.speech import audio as A
from seqverse.speech.adaspeech import text as T
from seqverse.speech.adaspeech.api import SOURCE_DIR, read_adaptation_set
from seqverse.speech.cli import main

DATA = Path(__file__).parents[2] / "data" / "adaspeech"


def test_missing_and_silent_wav_are_named(tmp_path):
    with pytest.raises(InputError, match="no such audio file"):
        A.load_wav(tmp_path / "nope.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(InputError, match="silent.wav: audio is silent"):
        A.load_wav(tmp_path / "silent.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(InputError, match="junk.wav: cannot read audio"):
        A.load_wav(tmp_path / "junk.wav")


def test_sample_rate_mismatch_is_resampled(tmp_path):
    y, sr = sf.read(DATA / "kal_high_000.wav", dtype="float32")
    import librosa

    sf.write(tmp_path / "x.wav", librosa.resample(y, orig_sr=sr, target_sr=22050), 22050)
    z = A.load_wav(tmp_path / "x.wav")
    assert abs(len(z) - len(y)) <= 2 and np.isfinite(z).all()
    n = min(len(y), len(z))  # the same speech comes back at 16 kHz, not just the same length
    assert np.corrcoef(y[:n], z[:n])[0, 1] > 0.99
    assert np.abs(A.log_mel(z) - A.log_mel(y[: len(z)])).mean() < 0.1


def test_digits_symbols_and_unknown_words_are_normalised():
    assert T.normalise("I owe $25 & 3rd place, 50%!") == "i owe twenty five dollars and third place , fifty percent !"
    phones, unknown = T.to_phonemes("Zxqvorb at 10 o'clock")
    assert unknown == ["zxqvorb"] and all(p in T.SYMBOL_ID for p in phones)
    assert phones[0] == phones[-1] == T.SIL and len(phones) > 8


@pytest.mark.parametrize("bad", ["", "   ", "?!.,", "###"])
def test_empty_text_is_an_error(bad):
    with pytest.raises(InputError, match="no speakable words"):
        T.to_phonemes(bad)


def test_adaptation_list_errors_name_file_and_line(tmp_path):
    (tmp_path / "t.txt").write_text("kal_high_000|hello\nmissing_one|hi there\n")
    with pytest.raises(InputError, match=r"t.txt:2: .*missing_one.wav does not exist"):
        read_adaptation_set(DATA, tmp_path / "t.txt")
    (tmp_path / "u.txt").write_text("kal_high_000 no separator\n")
    with pytest.raises(InputError, match=r"u.txt:1: expected 'NAME\|text'"):
        read_adaptation_set(DATA, tmp_path / "u.txt")
    assert len(read_adaptation_set(DATA, DATA / "texts.txt")) == 3


def test_cli_empty_text_exits_2_without_output(tmp_path, capsys):
    assert main(["adaspeech", "say", "", "-o", str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err
    assert "empty text" in err and "Traceback" not in err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.skipif(not (SOURCE_DIR / "model.safetensors").is_file(), reason="no shipped model")
def test_cli_say_and_voices_with_shipped_model(tmp_path, capsys):
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["adaspeech", "say", "hello world, 42 times", "-o", str(tmp_path / "h.wav"), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert main(["adaspeech", "say", "hello world, 42 times", "-o", str(tmp_path / "fast.wav"), "--speed", "2",
                     "--json"]) == 0
        fast = json.loads(capsys.readouterr().out)
    finally:
        torch.set_num_threads(n)
    y, sr = sf.read(tmp_path / "h.wav")
    assert sr == 16000 and np.isfinite(y).all() and np.abs(y).max() > 0.01
    assert out["seconds"] == pytest.approx(len(y) / sr, abs=0.01) and out["voice"] == "slt"
    assert out["phonemes"] == fast["phonemes"] > 15  # "hello world, forty two times"
    assert 0.4 < fast["frames"] / out["frames"] < 0.6  # --speed 2: half the mel frames
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "h.wav").stat().st_mode & 0o777 == 0o666 & ~umask  # 0644 under umask 022, not mkstemp's 0600
    assert main(["adaspeech", "voices", "--json"]) == 0
    assert "adapted (adaspeech)" in capsys.readouterr().out
    assert main(["adaspeech", "say", "hi", "-o", str(tmp_path / "x.wav"), "--voice", "nobody"]) == 2
    assert "unknown voice 'nobody'" in capsys.readouterr().err
