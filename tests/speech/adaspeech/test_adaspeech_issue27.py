"""Issue 27: extended source voices (contrib/non-free + Piper), paper-size model, bootstrap scoring, 0644 wavs."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from seqverse.core.clikit import InputError
from seqverse.speech.adaspeech import corpus as C
from seqverse.speech.adaspeech import evaluate as E

ROOT = Path(__file__).parents[3]
SCRIPT = ROOT / "scripts" / "enable_contrib_nonfree.sh"


def test_extended_corpus_has_16_source_timbres_and_no_slt_in_the_source():
    speakers = C.default_speakers(extended=True)
    source = [s for s in speakers if s.role == "source"]
    timbres = {s.base for s in source}
    assert len(timbres) == 16, sorted(timbres)
    assert not any("slt" in (s.name + s.voice + s.base).lower() for s in source)
    targets = {s.name: s for s in speakers if s.role == "target"}
    assert set(targets) == {"slt", "joe", "clb", "es_gbcwmd_m7"}
    assert targets["joe"].engine == "piper" and targets["clb"].engine == "rhvoice"
    # held out means from elsewhere: no target's base voice is a source timbre
    assert not {t.base for t in targets.values()} & timbres
    assert len({s.name for s in speakers}) == len(speakers)
    # the base corpus (and its sentence draw) is unchanged: the extended speakers come after it
    base = C.default_speakers()
    n_base_source = sum(s.role == "source" for s in base)
    assert speakers[:n_base_source] == base[:n_base_source]
    assert C.WER_EXEMPT_TARGETS == ("es_gbcwmd_m7",)


def test_missing_voice_is_named_with_the_opt_in_script_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "RHVoice-test" else "/usr/bin/" + name)
    spk = [C.Speaker("alan_test", "rhvoice", "alan", 0, 1.0, timbre="rhvoice:alan")]
    with pytest.raises(InputError, match="enable_contrib_nonfree.sh"):
        C.build_corpus(tmp_path / "c", speakers=spk, progress=False)
    assert not (tmp_path / "c").exists()


def test_opt_in_script_is_valid_bash_for_bookworm_and_not_needed_by_make():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert "Components: contrib non-free" in text and "bookworm" in text and "--install" in text
    for pkg in ("rhvoice-english", "libttspico-data", "mbrola-us1", "mbrola-en1", "festvox-rablpc16k"):
        assert pkg in text
    assert os.access(SCRIPT, os.X_OK)
    assert "enable_contrib_nonfree" not in (ROOT / "Makefile").read_text() + (ROOT / "scripts" / "demo.sh").read_text()


ENGINES = [("rhvoice", "alan", "RHVoice-test", "/usr/share/RHVoice/voices/alan"),
           ("pico", "en-GB", "pico2wave", "/usr/share/pico/lang"),
           ("mbrola", "mb-us2", "espeak-ng", "/usr/share/mbrola/us2"),
           ("festival", "rab_diphone", "festival", "/usr/share/festival/voices/english/rab_diphone")]


@pytest.mark.slow
@pytest.mark.parametrize("engine,voice,program,data", ENGINES, ids=[e[0] for e in ENGINES])
def test_extended_engine_writes_a_formant_shifted_wav(tmp_path, engine, voice, program, data):
    """Each contrib/non-free engine (where installed) writes the final wav, removes the raw one, and
    the formant factor 1.2 shortens the audio against factor 1.0 at the same requested stretch."""
    import soundfile as sf

    if shutil.which(program) is None or not Path(data).exists():
        pytest.skip(f"{engine} voice {voice} not installed (scripts/enable_contrib_nonfree.sh --install)")
    sentence = "A penny saved is a penny earned."
    plain, shifted = tmp_path / "plain.wav", tmp_path / "shifted.wav"
    pitch = 50 if engine == "mbrola" else 0
    C.synthesise(C.Speaker("p", engine, voice, pitch, 1.0, formant=1.0), [(sentence, plain)])
    C.synthesise(C.Speaker("s", engine, voice, pitch, 1.0, formant=1.2), [(sentence, shifted)])
    assert shifted.is_file() and not shifted.with_suffix(".raw.wav").exists()
    y0, y1 = sf.read(plain)[0], sf.read(shifted)[0]
    assert np.abs(y0).max() > 0.01 and np.abs(y1).max() > 0.01
    # speed was pre-compensated, so lengths stay within ~25% (without it: 1/1.2 from the shift alone ...)
    assert 0.75 < len(y1) / len(y0) < 1.3


def test_bootstrap_intervals_cover_the_mean_and_resolve_a_real_difference():
    rng = np.random.default_rng(1)
    a = {"mcd": list(rng.normal(3.0, 0.3, 40)), "similarity": list(rng.normal(0.8, 0.05, 40)),
         "word_errors": list(rng.integers(0, 4, 40)), "words": list(rng.integers(6, 12, 40))}
    lo, hi = E.bootstrap_interval(a, "mcd")
    assert lo < np.mean(a["mcd"]) < hi and hi - lo < 0.4
    wer = sum(a["word_errors"]) / sum(a["words"])
    lo, hi = E.bootstrap_interval(a, "wer")
    assert lo < wer < hi
    assert E.bootstrap_interval(a, "similarity", a) == (0.0, 0.0)  # paired with itself: no difference
    b = {**a, "similarity": list(np.asarray(a["similarity"]) - 0.05)}
    lo, hi = E.bootstrap_interval(a, "similarity", b)  # paired: the constant shift is resolved exactly
    assert lo == pytest.approx(0.05) and hi == pytest.approx(0.05)
    c = {**a, "similarity": list(np.asarray(a["similarity"]) + rng.normal(0, 0.05, 40))}
    lo, hi = E.bootstrap_interval(a, "similarity", c)
    assert lo < 0 < hi  # noise only: the interval straddles zero
    with pytest.raises(ValueError, match="same sentences"):
        E.bootstrap_interval(a, "mcd", {"mcd": [1.0]})


def test_per_sentence_word_errors_add_up_to_corpus_wer():
    refs = ["The cat sat on the mat.", "Fortune favours the bold.", "It costs $25."]
    hyps = ["the cat sat on a mat", "", "it costs twenty five dollars extra"]
    errors, words = E.word_errors(refs, hyps)
    assert sum(errors) / sum(words) == pytest.approx(E.wer(refs, hyps))
    assert errors[0] == 1 and words[1] == 4


def test_paper_size_voice_stores_about_5k_numbers_and_fits_10_mb():
    from seqverse.speech.adaspeech import text as T
    from seqverse.speech.adaspeech.model import PAPER_SIZE, AdaSpeech, AdaSpeechConfig
    from seqverse.speech.adaspeech.train import Voice, adapted_parameters

    torch.manual_seed(0)
    model = AdaSpeech(AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=[f"s{i}" for i in range(105)], **PAPER_SIZE))
    assert model.config.d_model == 256 and len(model.decoder) == 4 and len(model.decoder_norms()) == 8
    assert model.config.speaker_dim == 256
    fine_tuned = sum(p.numel() for p in adapted_parameters(model, "adaspeech").values()) + 256
    assert fine_tuned == 8 * 2 * 256 * 256 + 256  # W^gamma, W^beta of 8 CLNs + E^s
    voice = Voice("adaspeech", torch.randn(256), torch.zeros(256),
                  {k: v.detach().clone() for k, v in adapted_parameters(model, "adaspeech").items()})
    assert voice.deploy(model).n_adapted == 8 * 2 * 256 + 256 == 4352 <= 5000
    assert 2 * sum(p.numel() for p in model.parameters()) < 10_000_000  # fp16 checkpoint under 10 MB


def test_fp16_export_loads_as_float32(tmp_path):
    from seqverse.speech.adaspeech import text as T
    from seqverse.speech.adaspeech.model import AdaSpeech, AdaSpeechConfig

    torch.manual_seed(0)
    model = AdaSpeech(AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=["a"], d_model=32, ffn_filter=48,
                                      variance_filter=32)).eval()
    model.save_pretrained(tmp_path / "m", dtype=torch.float16)
    back = AdaSpeech.from_pretrained(tmp_path / "m")
    w = dict(back.named_parameters())
    assert all(p.dtype == torch.float32 for p in w.values())
    for k, p in model.named_parameters():
        assert torch.equal(w[k], p.detach().half().float())


def test_timbre_curve_subsets_start_with_the_base_corpus_timbres():
    from dataclasses import asdict

    from seqverse.speech.adaspeech.train import source_timbres

    summary = {"speakers": [asdict(s) for s in C.default_speakers(extended=True)]}
    timbres = source_timbres(summary)
    assert len(timbres) == 16 and len(set(timbres)) == 16
    assert timbres[:5] == ["espeak", "festival:kal_diphone", "festival:ked_diphone", "flite:awb", "flite:rms"]
    assert "rhvoice:clb" not in timbres and "festival:slt" not in timbres


def test_saved_model_and_synthesised_wav_are_0644(tmp_path):
    """Issue 27 item 5: outputs are ordinary 0644 files under umask 022 (mkstemp / safetensors write 0600)."""
    from seqverse.speech import audio as A
    from seqverse.speech.adaspeech import text as T
    from seqverse.speech.adaspeech.model import AdaSpeech, AdaSpeechConfig

    old = os.umask(0o022)
    try:
        AdaSpeech(AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=["a"], d_model=32, ffn_filter=48,
                                  variance_filter=32)).save_pretrained(tmp_path / "m")
        A.save_wav(tmp_path / "x.wav", np.zeros(1600, np.float32))
    finally:
        os.umask(old)
    assert (tmp_path / "m" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "x.wav").stat().st_mode & 0o777 == 0o644


def test_synthesiser_run_is_retried_with_more_time_after_a_stall():
    """A stalled synthesiser run is retried with twice the time; past the last try it still fails."""
    C._run_tool(["sleep", "0.3"], timeout=0.1, tries=3)  # 0.1 s, 0.2 s, then 0.4 s: finishes
    with pytest.raises(subprocess.TimeoutExpired):
        C._run_tool(["sleep", "0.3"], timeout=0.1, tries=2)
