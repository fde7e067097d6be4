"""Several trained OATs read as one model: a mixture of their next-fixation distributions (ours).

On the human collages one model is trained on 300 scanpaths, and seeds differ more than recipes do;
averaging the members' distributions (a uniform mixture) lowers that variance, and the sampled
scanpaths that minimum-Bayes-risk decoding (:mod:`.decode`) chooses from come from the mixture.
Decoding, prediction and scoring take an ensemble wherever they take an :class:`~.model.OAT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .model import OAT, generate_scanpaths, generation_masks


class OATEnsemble(nn.Module):
    """A uniform mixture of OAT members that share the appearance mode (object crops or layout-only)."""

    def __init__(self, members: Sequence[OAT]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        first = members[0].config
        for m in members[1:]:
            c = m.config
            if (c.appearance, c.crop_height, c.crop_width) != (first.appearance, first.crop_height, first.crop_width):
                raise ValueError("ensemble members must share the appearance mode and crop size")
        self.members = nn.ModuleList(members)

    @property
    def config(self):
        """The first member's configuration (appearance mode, crop size, ``max_len`` of generation)."""
        return self.members[0].config

    @classmethod
    def from_pretrained(cls, directories: Sequence[str | Path]) -> OATEnsemble:
        return cls([OAT.from_pretrained(d) for d in directories]).eval()

    def forward(self, batch: dict) -> torch.Tensor:
        """Teacher-forced log-probabilities (B, T, N + 2) of the mixture that generation samples: each
        member's softmax under generation's masks (never PAD, no end at step 1), averaged, logged."""
        probs = torch.stack([torch.softmax(generation_masks(m(batch)), -1) for m in self.members])
        return torch.log(probs.mean(0).clamp_min(1e-30))

    @torch.no_grad()
    def generate(self, batch: dict, sample: bool = False, max_len: int | None = None,
                 generator: torch.Generator | None = None, cached: bool = True,
                 temperature: float = 1.0) -> list[list[int]]:
        """Scanpaths from the mixture: each step draws from (or takes the argmax of) the members' mean of
        softmax(logits / temperature)."""
        return generate_scanpaths(list(self.members), batch, sample, max_len or self.config.max_len, generator,
                                  cached, temperature)
