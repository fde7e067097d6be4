"""Audio helpers shared by the speech systems: checked wav loading, log-mel features, Griffin-Lim.

One feature definition for the whole package (16 kHz, 80-bin log-mel, 12.5 ms hop) so corpora,
models and vocoders agree. Bad audio is reported with the file name, never passed on as NaNs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5


MEL = MelConfig()
# A recording whose peak is below this (about -60 dBFS) carries no speech.
SILENCE_PEAK = 1e-3


def load_wav(path, sample_rate: int = MEL.sample_rate, trim_db: float | None = None) -> np.ndarray:
    """Mono float32 audio at ``sample_rate`` (resampled when the file differs).

    Raises :class:`InputError` naming the file when it is missing, unreadable, empty or silent.
    """
    import librosa
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such audio file")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own error types for bad headers
        raise InputError(f"{path}: cannot read audio ({err})") from err
    audio = audio.mean(axis=1)
    if audio.size == 0:
        raise InputError(f"{path}: audio file is empty")
    if not np.all(np.isfinite(audio)):
        raise InputError(f"{path}: audio contains NaN or infinite samples")
    if sr != sample_rate:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise InputError(f"{path}: audio is silent (peak below {SILENCE_PEAK:g})")
    if trim_db is not None:
        audio, _ = librosa.effects.trim(audio, top_db=trim_db)
    return audio


def log_mel(audio: np.ndarray, cfg: MelConfig = MEL) -> np.ndarray:
    """[frames, n_mels] natural-log mel magnitude spectrogram (librosa)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=1.0,
    )
    return np.log(np.maximum(mel, cfg.log_floor)).T.astype(np.float32)


def frame_energy(audio: np.ndarray, cfg: MelConfig = MEL) -> np.ndarray:
    """[frames] L2 norm of each STFT frame's magnitude (FastSpeech 2's energy)."""
    import librosa

    spec = np.abs(librosa.stft(audio, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length))
    return np.linalg.norm(spec, axis=0).astype(np.float32)


def frame_pitch(audio: np.ndarray, cfg: MelConfig = MEL, fmin: float = 60.0, fmax: float = 500.0) -> np.ndarray:
    """[frames] F0 in Hz (0 where unvoiced): YIN, with frames gated by energy and periodicity."""
    import librosa

    f0 = librosa.yin(audio, fmin=fmin, fmax=fmax, sr=cfg.sample_rate, frame_length=cfg.n_fft,
                     hop_length=cfg.hop_length)
    rms = librosa.feature.rms(y=audio, frame_length=cfg.n_fft, hop_length=cfg.hop_length)[0]
    zcr = librosa.feature.zero_crossing_rate(audio, frame_length=cfg.n_fft, hop_length=cfg.hop_length)[0]
    voiced = (rms > 0.1 * np.median(rms[rms > 0]) if np.any(rms > 0) else rms > 0) & (zcr < 0.2) & (f0 < fmax * 0.98)
    return np.where(voiced, f0, 0.0).astype(np.float32)


def griffin_lim(log_mel_frames: np.ndarray, cfg: MelConfig = MEL, n_iter: int = 48) -> np.ndarray:
    """Waveform from a [frames, n_mels] log-mel spectrogram (librosa's mel inversion + Griffin-Lim).

    Griffin-Lim starts from fixed (seeded) random phases, so the same mel always gives the same
    waveform and the ASR / speaker metrics computed on it are reproducible run to run.
    """
    import librosa

    mel = np.exp(np.asarray(log_mel_frames, dtype=np.float32).T)
    magnitude = librosa.feature.inverse.mel_to_stft(mel, sr=cfg.sample_rate, n_fft=cfg.n_fft, power=1.0,
                                                    fmin=cfg.fmin, fmax=cfg.fmax)
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=cfg.hop_length, win_length=cfg.win_length,
                               n_fft=cfg.n_fft, random_state=0)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    return audio.astype(np.float32)


def save_wav(path, audio: np.ndarray, sample_rate: int = MEL.sample_rate) -> Path:
    """Write 16-bit PCM atomically (temporary file in the same directory, then rename)."""
    import soundfile as sf

    from seqverse.core.clikit import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:  # 0644, no partial file on failure
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path
