"""`seqverse-speech emote`: bad input is one line, exit 2, nothing written; emotions are listed."""

import json

import numpy as np
import pytest
import soundfile as sf

from seqverse.speech import cli


def _run(args, capsys):
    rc = cli.main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def wavs(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    speechy = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    sf.write(tmp_path / "ok.wav", speechy, sr)
    sf.write(tmp_path / "silent.wav", np.zeros(sr, np.float32), sr)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n")
    return tmp_path


@pytest.mark.parametrize("name, extra, needle", [
    ("missing.wav", [], "no such file"),
    ("empty.wav", [], "empty.wav"),
    ("silent.wav", [], "silent"),
    ("text.wav", [], "text.wav"),
    ("ok.wav", ["--emotion", "jolly"], "known: neutral, happy, sad"),
    ("ok.wav", ["--intensity", "4"], "intensity 4"),
    ("ok.wav", ["--intensity", "0", "--emotion", "sad"], "intensity 0"),
])
def test_bad_input_exits_2_and_writes_nothing(wavs, capsys, name, extra, needle):
    out = wavs / "out" / "anim"
    rc, _, err = _run(["emote", "animate", str(wavs / name), "-o", str(out), "--video", str(wavs / "out" / "a.mp4"), *extra],
                      capsys)
    assert rc == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (wavs / "out").exists() or not any((wavs / "out").iterdir())


def test_emotions_lists_eight(capsys):
    rc, out, _ = _run(["emote", "emotions", "--json"], capsys)
    names = [r["emotion"] for r in json.loads(out)]
    assert rc == 0 and names[0] == "neutral" and len(names) == 8 and "contempt" in names


def test_animate_with_shipped_model(wavs, capsys):
    out = wavs / "res" / "anim"
    rc, stdout, err = _run(["emote", "animate", str(wavs / "ok.wav"), "-o", str(out), "--emotion", "sad",
                            "--intensity", "3", "--json"], capsys)
    assert rc == 0, err
    z = np.load(str(out) + ".npz")
    t = len(z["expression"])
    assert float(z["fps"]) == 25 and t == 25           # 1 s of audio
    assert z["expression"].shape == (t, 20) and z["jaw"].shape == (t, 3)
    assert z["vertices"].shape[0] == t and z["vertices"].shape[2] == 3
    from seqverse.speech.emote.face import default_face
    up, low = default_face().lip_vertices
    assert np.allclose(z["mouth_opening"], np.linalg.norm(z["vertices"][:, up] - z["vertices"][:, low], axis=-1), atol=1e-4)
    assert (out.parent / "anim.npz").stat().st_mode & 0o777 == 0o644
    assert json.loads(stdout)["frames"] == t


def test_animate_with_a_phone_front_end_model(wavs, capsys, tmp_path):
    """A model trained with --phone-frontend gets the wav's recognised phones beside its log-mel."""
    import torch

    from seqverse.speech.emote.model import EMOTE, EMOTEConfig, save_pretrained

    torch.manual_seed(0)
    save_pretrained(EMOTE(EMOTEConfig(use_prior=False, phone_frontend=True)), tmp_path / "phones_model")
    out = wavs / "res" / "anim"
    rc, stdout, err = _run(["emote", "animate", str(wavs / "ok.wav"), "-o", str(out), "--model",
                            str(tmp_path / "phones_model"), "--json"], capsys)
    assert rc == 0, err
    assert json.loads(stdout)["frames"] == 25 and np.load(str(out) + ".npz")["expression"].shape == (25, 20)
