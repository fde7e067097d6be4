"""Where inside an object a fixation lands (ours, beyond the paper).

OAT predicts objects; the official MultiMatch (``calculate_mm.py``) compares the prediction's object
centres with people's raw fixation pixels. People do not land on centres: a refixation lands elsewhere
in the object than the first fixation (at the centre both, it becomes a zero-length saccade, which
MultiMatch reads as a rightward one), and a saccade from the side lands short of the centre (saccadic
undershoot). This module is a linear model of the landing offset from the box centre, in units of the
box's width and height, with features [first visit, refixation, incoming saccade direction x, y],
fitted by least squares on the training people's raw fixations; the residual spread is kept so that
the landing-aware MBR (``decode.mbr_landing_index``) can draw pseudo-people. Stored as
``landing.json`` (plain numbers) beside a checkpoint; without it, predictions sit on object centres.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError, atomic_write

from .displays import Display

FEATURES = ("first_visit", "refixation", "incoming_dx", "incoming_dy")
FILE = "landing.json"


def landing_features(d: Display, objects: Sequence[int]) -> np.ndarray:
    """(n, 4) features of each fixation of an object scanpath (see FEATURES)."""
    objs = np.asarray(objects, dtype=int)
    c = d.centres[objs] if len(objs) else np.zeros((0, 2))
    f = np.zeros((len(objs), 4))
    for k in range(len(objs)):
        if k > 0 and objs[k] == objs[k - 1]:
            f[k, 1] = 1.0
            continue
        f[k, 0] = 1.0
        if k > 0:
            v = c[k] - c[k - 1]
            f[k, 2:] = v / max(float(np.hypot(*v)), 1e-9)
    return f


def _box_sizes(d: Display, objs: np.ndarray) -> np.ndarray:
    b = d.boxes[objs]
    return np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


@dataclass
class Landing:
    weights: np.ndarray  # (4, 2): offset per feature, in box widths / heights
    spread: np.ndarray  # (2,): residual standard deviation, in box widths / heights

    def place(self, d: Display, objects: Sequence[int]) -> np.ndarray:
        """(n, 2) pixel positions of an object scanpath: centre + predicted mean offset."""
        objs = np.asarray(objects, dtype=int)
        if not len(objs):
            return np.zeros((0, 2))
        return d.centres[objs] + (landing_features(d, objs) @ self.weights) * _box_sizes(d, objs)

    def draw(self, d: Display, objects: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """One random landing per fixation (mean offset + Gaussian residual): a pseudo-person's pixels."""
        objs = np.asarray(objects, dtype=int)
        xy = self.place(d, objs)
        if not len(objs):
            return xy
        return xy + rng.normal(size=xy.shape) * self.spread * _box_sizes(d, objs)

    def save(self, directory: str | Path) -> None:
        rec = {"features": list(FEATURES), "weights": self.weights.round(6).tolist(),
               "spread": self.spread.round(6).tolist(), "units": "box width (x), box height (y)"}
        with atomic_write(Path(directory) / FILE) as f:
            json.dump(rec, f, indent=1)

    @classmethod
    def load(cls, directory: str | Path) -> Landing | None:
        """The landing model saved beside a checkpoint, or None when there is none."""
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        try:
            rec = json.loads(path.read_text())
            w, s = np.asarray(rec["weights"], dtype=float), np.asarray(rec["spread"], dtype=float)
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a landing model ({e})") from None
        if w.shape != (len(FEATURES), 2) or s.shape != (2,) or not (np.isfinite(w).all() and np.isfinite(s).all()):
            raise InputError(f"{path}: weights must be {len(FEATURES)} x 2 and spread 2 finite numbers")
        return cls(w, s)


def fit_landing(displays: Sequence[Display]) -> Landing:
    """Least-squares landing model from every person's raw fixations on ``displays`` (training only)."""
    xs, ys = [], []
    for d in displays:
        for fx in d.fixations.values():
            if not len(fx):
                continue
            objs = np.asarray(d.objects_of(fx), dtype=int)
            xs.append(landing_features(d, objs))
            ys.append((np.asarray(fx, dtype=float) - d.centres[objs]) / _box_sizes(d, objs))
    if not xs:
        raise InputError("landing: the displays hold no raw fixations to fit on")
    x, y = np.concatenate(xs), np.concatenate(ys)
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    return Landing(w, (y - x @ w).std(0))
