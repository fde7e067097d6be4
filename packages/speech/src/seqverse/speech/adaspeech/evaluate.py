"""Synthesis and objective evaluation: MCD (DTW-aligned), resemblyzer speaker similarity, WER.

* MCD: mel-cepstra c1..c24 (DCT of the natural-log mel amplitude spectrum) of both signals, frames
  paired by DTW (librosa), MCD = 10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2), averaged on the path.
* Speaker similarity: cosine between resemblyzer embeddings of the synthesised and the real
  recording of the same held-out sentence.
* Intelligibility: pocketsphinx (en-us acoustic model and LM from its wheel) transcripts scored
  with jiwer's corpus WER against the normalised text.
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


def wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    refs = [" ".join(w for w in T.normalise(r).split() if w[0].isalpha()) for r in references]
    hyps = [h.lower().strip() or "<empty>" for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


def score(pairs: list[tuple[np.ndarray, np.ndarray, str]]) -> dict:
    """Mean MCD, speaker similarity and corpus WER over (real, synthesised, text) triples."""
    mcd = [mcd_dtw(r, s) for r, s, _ in pairs]
    sim = [speaker_similarity(s, r) for r, s, _ in pairs]
    hyps = [transcribe(s) for _, s, _ in pairs]
    return {"mcd": float(np.mean(mcd)), "similarity": float(np.mean(sim)), "wer": wer([t for _, _, t in pairs], hyps),
            "n": len(pairs)}


def evaluate_voice(model, voice, tests: list[tuple[str, str]], progress: bool = False) -> dict:
    """Scores of ``voice`` on held-out (wav path, text) pairs of its target speaker."""
    from tqdm import tqdm

    applied = voice.apply(model)
    pairs = []
    for wav, sentence in tqdm(tests, desc="synthesise", disable=not progress):
        real = A.load_wav(wav)
        synth, _ = synthesise(applied, _Bare(voice), sentence)
        pairs.append((real, synth, sentence))
    return score(pairs)


def evaluate_ceiling(tests: list[tuple[str, str]]) -> dict:
    """The same scores for the real recordings vocoded by Griffin-Lim (log-mel -> waveform)."""
    pairs = []
    for wav, sentence in tests:
        real = A.load_wav(wav)
        pairs.append((real, A.griffin_lim(A.log_mel(real)), sentence))
    return score(pairs)


class _Bare:
    """A voice already applied to the model: carries only the speaker and utterance vectors."""

    def __init__(self, voice):
        self.mode, self.params, self.speaker, self.utterance = "speaker", {}, voice.speaker, voice.utterance
