"""Synthesis and objective evaluation: MCD (DTW-aligned), resemblyzer speaker similarity, WER.

* MCD: mel-cepstra c1..c24 (DCT of the natural-log mel amplitude spectrum) of both signals, frames
  paired by DTW (librosa), MCD = 10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2), averaged on the path.
* Speaker similarity: cosine between resemblyzer embeddings of the synthesised and the real
  recording of the same held-out sentence.
* Intelligibility: pocketsphinx (en-us acoustic model and LM from its wheel) transcripts scored
  with jiwer's corpus WER against the normalised text. CLI-free: the wheel's Python ``Decoder``
  is driven in-process (``Decoder(samprate=16000)``, ``start_utt`` / ``process_raw`` of 16-bit PCM
  / ``end_utt`` / ``hyp()``), so no ``pocketsphinx`` executable or model download is needed.
* Intervals: :func:`bootstrap_interval` resamples the held-out sentences (percentile, 95%), also
  for the paired difference of two systems on the same sentences.
The ceiling is the target's real recordings passed through the same Griffin-Lim vocoder.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from seqverse.speech import audio as A
from seqverse.speech.adaspeech import text as T


@torch.no_grad()
def synthesise(model, voice, sentence: str, duration_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(waveform, log-mel) for ``sentence`` in ``voice`` (a Voice applied to ``model``)."""
    m = voice.apply(model) if voice.mode != "speaker" or voice.params else model
    phones, _ = T.to_phonemes(sentence)
    ids = torch.tensor([T.phoneme_ids(phones)])
    out = m(ids, torch.tensor([ids.shape[1]]), voice.speaker[None], utterance=voice.utterance[None],
            duration_scale=duration_scale)
    mel = out["mel"][0, : int(out["frame_lengths"][0])].numpy()
    if not np.all(np.isfinite(mel)):
        raise FloatingPointError(f"non-finite mel for {sentence!r}")
    return A.griffin_lim(mel), mel


def _cepstra(audio: np.ndarray) -> np.ndarray:
    import librosa
    from scipy.fft import dct

    audio, _ = librosa.effects.trim(audio, top_db=35)
    mel = librosa.feature.melspectrogram(y=audio, sr=A.MEL.sample_rate, n_fft=A.MEL.n_fft, hop_length=A.MEL.hop_length,
                                         win_length=A.MEL.win_length, n_mels=A.MEL.n_mels, power=1.0)
    n = mel.shape[0]
    # SPTK's cepstrum convention: ln|M(w)| = c_0 + 2 sum_k c_k cos(k w)  ->  c_k = DCT-II / (2N)
    return dct(np.log(np.maximum(mel, 1e-10)), type=2, axis=0)[1:25] / (2 * n)


def mcd_dtw(reference: np.ndarray, synthesised: np.ndarray) -> float:
    """Mel-cepstral distortion in dB after DTW alignment of the two cepstrum sequences."""
    import librosa

    x, y = _cepstra(reference), _cepstra(synthesised)
    _, path = librosa.sequence.dtw(X=x, Y=y, metric="euclidean")
    diff = x[:, path[:, 0]] - y[:, path[:, 1]]
    return float(10.0 / math.log(10.0) * np.mean(np.sqrt(2.0 * (diff ** 2).sum(0))))


@functools.lru_cache(maxsize=1)
def _voice_encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(audio: np.ndarray) -> np.ndarray:
    from resemblyzer import preprocess_wav

    return _voice_encoder().embed_utterance(preprocess_wav(audio, source_sr=A.MEL.sample_rate))


def speaker_similarity(a: np.ndarray, b: np.ndarray) -> float:
    ea, eb = speaker_embedding(a), speaker_embedding(b)
    return float(np.dot(ea, eb) / (np.linalg.norm(ea) * np.linalg.norm(eb)))


@functools.lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder

    return Decoder(samprate=A.MEL.sample_rate, loglevel="FATAL")


def transcribe(audio: np.ndarray) -> str:
    d = _decoder()
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    hyp = d.hyp()
    return hyp.hypstr if hyp is not None else ""


def _wer_words(references: list[str], hypotheses: list[str]) -> tuple[list[str], list[str]]:
    refs = [" ".join(w for w in T.normalise(r).split() if w[0].isalpha()) for r in references]
    hyps = [h.lower().strip() or "<empty>" for h in hypotheses]
    return refs, hyps


def wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return float(jiwer.wer(*_wer_words(references, hypotheses)))


def word_errors(references: list[str], hypotheses: list[str]) -> tuple[list[int], list[int]]:
    """Per sentence (edit errors S+D+I, reference words): corpus WER = sum(errors) / sum(words),
    the same number as :func:`wer`, in a form a bootstrap over sentences can resample."""
    import jiwer

    errors, words = [], []
    for ref, hyp in zip(*_wer_words(references, hypotheses)):
        o = jiwer.process_words(ref, hyp)
        errors.append(o.substitutions + o.deletions + o.insertions)
        words.append(o.substitutions + o.deletions + o.hits)
    return errors, words


def score(pairs: list[tuple[np.ndarray, np.ndarray, str]], with_wer: bool = True) -> dict:
    """Mean MCD, speaker similarity and corpus WER over (real, synthesised, text) triples, and the
    per-sentence values (``per_sentence``) that bootstrap intervals resample. ``with_wer=False``
    skips the ASR (for targets whose vocoded truth pocketsphinx cannot read)."""
    mcd = [mcd_dtw(r, s) for r, s, _ in pairs]
    sim = [speaker_similarity(s, r) for r, s, _ in pairs]
    out = {"mcd": float(np.mean(mcd)), "similarity": float(np.mean(sim)), "n": len(pairs)}
    per = {"mcd": [round(float(x), 5) for x in mcd], "similarity": [round(float(x), 5) for x in sim]}
    if with_wer:
        hyps = [transcribe(s) for _, s, _ in pairs]
        errors, words = word_errors([t for _, _, t in pairs], hyps)
        out["wer"] = wer([t for _, _, t in pairs], hyps)
        per.update(word_errors=errors, words=words)
    out["per_sentence"] = per
    return out


def evaluate_voice(model, voice, tests: list[tuple[str, str]], progress: bool = False, with_wer: bool = True) -> dict:
    """Scores of ``voice`` on held-out (wav path, text) pairs of its target speaker."""
    from tqdm import tqdm

    applied = voice.apply(model)
    pairs = []
    for wav, sentence in tqdm(tests, desc="synthesise", disable=not progress):
        real = A.load_wav(wav)
        synth, _ = synthesise(applied, _Bare(voice), sentence)
        pairs.append((real, synth, sentence))
    return score(pairs, with_wer)


def evaluate_ceiling(tests: list[tuple[str, str]], with_wer: bool = True) -> dict:
    """The same scores for the real recordings vocoded by Griffin-Lim (log-mel -> waveform)."""
    pairs = []
    for wav, sentence in tests:
        real = A.load_wav(wav)
        pairs.append((real, A.griffin_lim(A.log_mel(real)), sentence))
    return score(pairs, with_wer)


def bootstrap_interval(per_sentence: dict, metric: str, other: dict | None = None, n_boot: int = 2000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over held-out sentences of ``metric`` ('mcd', 'similarity' or
    'wer'), or, with ``other`` (the same sentences scored for another system), of the paired
    difference this - other. WER is resampled as corpus WER: sum of errors / sum of words."""
    rng = np.random.default_rng(seed)

    def values(per):
        if metric == "wer":
            return np.asarray(per["word_errors"], float), np.asarray(per["words"], float)
        return np.asarray(per[metric], float), None

    a, aw = values(per_sentence)
    b, bw = values(other) if other is not None else (None, None)
    n = len(a)
    if b is not None and len(b) != n:
        raise ValueError(f"paired bootstrap needs the same sentences ({n} vs {len(b)})")
    idx = rng.integers(0, n, size=(n_boot, n))

    def stat(x, w):
        return x[idx].sum(1) / w[idx].sum(1) if w is not None else x[idx].mean(1)

    draws = stat(a, aw) - (stat(b, bw) if b is not None else 0.0)
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


class _Bare:
    """A voice already applied to the model: carries only the speaker and utterance vectors."""

    def __init__(self, voice):
        self.mode, self.params, self.speaker, self.utterance = "speaker", {}, voice.speaker, voice.utterance
