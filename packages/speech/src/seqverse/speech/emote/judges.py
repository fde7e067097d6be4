"""Perceptual networks trained here: the lip reader and the emotion classifier (EMOTE Sec. 3.3's losses).

EMOTE's lip-reading loss compares a pretrained lip reader's features of the rendered prediction and
the ground truth; its emotion loss compares a video emotion network's features. Here both read
vertex displacements from the identity's rest face (so they see motion, not identity):
- :class:`LipReader`: per-frame viseme classifier over the 64 lip vertices' displacements (temporal
  convolutions, or a bidirectional GRU for the evaluation judge). Trained on **generator B**
  motion (motion.py), a different coarticulation model than the targets (generator A).
- :class:`EmotionClassifier`: sequence-level emotion (8) and intensity (3) from the 68 landmark
  vertices' displacements, temporal convolutions then mean+max pooling; trained on training-split
  targets. Evaluation uses a separate judge (benchmarks: logistic regression on validation-split
  sequence statistics), never this network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqverse.speech.emote.corpus import VISEMES
from seqverse.speech.emote.motion import EMOTIONS


@dataclass
class LipReaderConfig:
    in_dim: int = 64 * 3
    hidden: int = 128
    n_classes: int = len(VISEMES)
    arch: str = "conv"     # "conv" (training loss) or "gru" (evaluation judge)


class LipReader(nn.Module):
    def __init__(self, config: LipReaderConfig | None = None):
        super().__init__()
        self.config = c = config or LipReaderConfig()
        self.inp = nn.Linear(c.in_dim, c.hidden)
        if c.arch == "conv":
            self.body = nn.Sequential(nn.Conv1d(c.hidden, c.hidden, 5, padding=2), nn.GELU(),
                                      nn.Conv1d(c.hidden, c.hidden, 5, padding=2), nn.GELU())
        else:
            self.body = nn.GRU(c.hidden, c.hidden // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(c.hidden, c.n_classes)

    def features(self, lips):
        """lips [B, T, 64, 3] displacements (mm) -> [B, T, hidden]."""
        h = torch.nn.functional.gelu(self.inp(lips.flatten(2) / 3.0))
        if self.config.arch == "conv":
            return self.body(h.transpose(1, 2)).transpose(1, 2)
        return self.body(h)[0]

    def forward(self, lips):
        return self.out(self.features(lips))


@dataclass
class EmotionClassifierConfig:
    in_dim: int = 68 * 3
    hidden: int = 128
    n_emotions: int = len(EMOTIONS)
    n_intensities: int = 3


class EmotionClassifier(nn.Module):
    def __init__(self, config: EmotionClassifierConfig | None = None):
        super().__init__()
        self.config = c = config or EmotionClassifierConfig()
        self.inp = nn.Linear(c.in_dim, c.hidden)
        self.body = nn.Sequential(nn.Conv1d(c.hidden, c.hidden, 5, padding=2), nn.GELU(),
                                  nn.Conv1d(c.hidden, c.hidden, 5, padding=4, dilation=2), nn.GELU())
        self.emotion = nn.Linear(2 * c.hidden, c.n_emotions)
        self.intensity = nn.Linear(2 * c.hidden, c.n_intensities)

    def features(self, landmarks):
        """landmarks [B, T, 68, 3] displacements (mm) -> [B, 2*hidden] sequence embedding."""
        h = torch.nn.functional.gelu(self.inp(landmarks.flatten(2) / 3.0))
        h = self.body(h.transpose(1, 2))
        return torch.cat([h.mean(2), h.amax(2)], 1)

    def forward(self, landmarks):
        f = self.features(landmarks)
        return self.emotion(f), self.intensity(f)
