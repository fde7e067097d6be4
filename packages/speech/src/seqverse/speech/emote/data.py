"""Training samples (audio crop + generated motion + conditions) and the vertex subsets the losses read."""

from __future__ import annotations

import numpy as np
import torch

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.corpus import MEL, MEL_PER_FRAME, Utterance
from seqverse.speech.emote.face import FaceModel, default_face

# every (emotion, intensity) a sample can have: neutral once (MEAD records neutral at one level), 7 x 3 others
COMBOS = [("neutral", 1)] + [(e, i) for e in M.EMOTIONS[1:] for i in M.INTENSITIES]
LOG_FLOOR = float(np.log(MEL.log_floor))


class Geometry:
    """Vertex subsets and displacement features computed from expression + jaw through the face model."""

    def __init__(self, face: FaceModel | None = None, seed: int = 0):
        self.face = face or default_face()
        rng = np.random.default_rng(seed)
        lip_idx = np.where(self.face.lip_mask)[0]
        self.lips = tuple(int(i) for i in np.sort(rng.choice(lip_idx, 64, replace=False)))
        self.landmarks = tuple(int(i) for i in self.face.landmark_vertices)
        others = np.setdiff1d(np.arange(self.face.n_vertices), lip_idx)
        # the vertex loss reads 160 lip-region vertices, the 68 landmarks and 100 others (CPU budget)
        loss = np.union1d(np.union1d(rng.choice(lip_idx, 160, replace=False), self.face.landmark_vertices),
                          rng.choice(others, 100, replace=False))
        self.loss = tuple(int(i) for i in loss)
        self.is_lip_in_loss = torch.as_tensor(np.isin(loss, lip_idx))

    def vertices(self, motion, identity, subset):
        """motion [B, T, 23] -> [B, T, |subset|, 3] vertices (mm)."""
        return self.face.vertices_torch(motion[..., :M.E], motion[..., M.E:], identity, subset)

    def displacement(self, motion, identity, subset):
        rest = self.vertices(torch.zeros_like(motion[:, :1]), identity, subset)
        return self.vertices(motion, identity, subset) - rest


def _mel_centres() -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(MEL.n_mels + 2, fmin=MEL.fmin, fmax=MEL.fmax)[1:-1]   # the filters' centres (Hz)


def warp_mel(mel: np.ndarray, alpha: float) -> np.ndarray:
    """Vocal-tract-length perturbation (Jaitly & Hinton 2013) on a [T, n_mels] log-mel: the band centred at f
    reads the band at f / alpha (linear interpolation between band centres; edges clamp), so formants move
    by the factor alpha, as from a speaker with a vocal tract 1/alpha as long."""
    centres = _mel_centres()
    src = centres / alpha
    return np.stack([np.interp(src, centres, row) for row in mel]).astype(np.float32)


def augment_mel(mel: np.ndarray, rng: np.random.Generator, warp=(0.85, 1.15), masks: int = 2,
                max_width: int = 8) -> np.ndarray:
    """Training-only audio augmentation for unseen voices: a random VTLP warp, then ``masks`` SpecAugment
    frequency masks (Park et al. 2019) of up to ``max_width`` bands, filled with the crop's mean level.
    No time warping or time masks: they would move or hide the bilabial closures the motion is aligned to."""
    out = warp_mel(mel, float(rng.uniform(*warp)))
    fill = float(out.mean())
    for _ in range(masks):
        w = int(rng.integers(0, max_width + 1))
        f0 = int(rng.integers(0, out.shape[1] - w + 1))
        out[:, f0:f0 + w] = fill
    return out


def model_input(mel: np.ndarray, track: np.ndarray | None, n_rows: int) -> np.ndarray:
    """[n_rows, 80 (+ N_PHONES)] what the audio encoder reads: the log-mel, then the recognised phone track
    one-hot when there is one (round 11, phones.py); padded past the end with the log floor (and silence).
    Models without the phone front end read the first 80 columns only."""
    from seqverse.speech.emote.phones import SIL, one_hot

    if len(mel) < n_rows:
        mel = np.concatenate([mel, np.full((n_rows - len(mel), mel.shape[1]), LOG_FLOOR, np.float32)])
    if track is None:
        return np.array(mel[:n_rows], np.float32)   # a copy: callers may write into it (augmentation)
    if len(track) < n_rows:
        track = np.concatenate([track, np.full(n_rows - len(track), SIL, track.dtype)])
    return np.concatenate([mel[:n_rows], one_hot(track[:n_rows])], 1)


class MotionDataset(torch.utils.data.Dataset):
    """Map-style: index -> (utterance, emotion x intensity combo); actor and crop drawn from the index.

    generator "a" gives the targets; "b" the lip reader's training motion (another coarticulation
    model) with per-frame viseme labels.
    """

    def __init__(self, utts: list[Utterance], crop: int = 64, generator: str = "a", seed: int = 0,
                 augment: bool = False):
        self.utts, self.crop, self.generator, self.seed, self.augment = utts, crop, generator, seed, augment
        self.content = []
        for u in utts:
            n = max(u.n_frames, crop)
            if generator == "a":
                lips, jaw = M.content_generator_a(u.phones, n)
            else:
                lips = jaw = None
            self.content.append((n, lips, jaw, M.bilabial_share(u.phones, n), M.frame_visemes(u.phones, n)))

    def __len__(self):
        return len(self.utts) * len(COMBOS)

    def __getitem__(self, i):
        u_idx, c_idx = divmod(int(i), len(COMBOS))
        u = self.utts[u_idx]
        emotion, intensity = COMBOS[c_idx]
        rng = np.random.default_rng([self.seed, u_idx, c_idx])
        actor = int(rng.integers(M.N_ACTORS))
        n, lips, jaw, share, vis = self.content[u_idx]
        if self.generator == "b":
            lips, jaw = M.content_generator_b(u.phones, n, rng)
        expr, jaw3 = M.compose(lips, jaw, share, emotion, intensity, actor, rng)
        start = int(rng.integers(0, n - self.crop + 1))
        sl = slice(start, start + self.crop)
        rows = slice(start * MEL_PER_FRAME, (start + self.crop) * MEL_PER_FRAME)
        # only the crop is built (padded past the utterance's end); model_input returns a new array, so
        # augmentation below writes into it, never into the corpus
        mel = model_input(u.mel[rows], None if u.track is None else u.track[rows], self.crop * MEL_PER_FRAME)
        if self.augment:   # own stream: motion unchanged; the phone columns are not audio and stay as recognised
            mel[:, :MEL.n_mels] = augment_mel(mel[:, :MEL.n_mels], np.random.default_rng([self.seed, u_idx, c_idx, 1]))
        return {
            "mel": torch.from_numpy(mel),
            "motion": torch.from_numpy(np.concatenate([expr[sl], jaw3[sl]], 1)),
            "visemes": torch.from_numpy(vis[sl]),
            "emotion": torch.tensor(M.EMOTIONS.index(emotion)),
            "intensity": torch.tensor(intensity - 1),
            "actor": torch.tensor(actor),
            "identity": torch.tensor(M.actor_style(actor)["identity"]),
        }


def full_sequence(u: Utterance, emotion: str, intensity: int, actor: int, multiple: int = 4, seed: int = 0) -> dict:
    """A whole utterance (padded to a multiple of ``multiple`` frames) with its generator-A target."""
    n = int(np.ceil(u.n_frames / multiple) * multiple)
    expr, jaw = M.target_motion(u.phones, n, emotion, intensity, actor, seed)
    return {"mel": model_input(u.mel, u.track, n * MEL_PER_FRAME), "motion": np.concatenate([expr, jaw], 1), "n_frames": u.n_frames,
            "visemes": M.frame_visemes(u.phones, n), "identity": M.actor_style(actor)["identity"]}
