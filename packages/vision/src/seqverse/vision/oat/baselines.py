"""Object-level baselines: each orders the display's objects by a priority and fixates them in that
order until it reaches the target (or ``max_len`` fixations), as the official comparison's random,
saliency and RGB-similarity models (paper Sec. 5.2). All know the target's box, as OAT does.

* random: a random order.        * centre-out: nearest to the display centre first.
* reading order: rows top to bottom, left to right (by object centre).
* saliency: mean spectral-residual saliency (Hou & Zhang 2007, ``cv2.saliency``) inside each box.
* target-RGB similarity: smallest distance between mean colours of the object's and the target's crop.
The pixel-level transformer is in :mod:`.pixel`.
"""

from __future__ import annotations

import numpy as np

from .displays import Display


def visit_until_target(order: np.ndarray, target: int, max_len: int) -> list[int]:
    """Fixate objects in ``order`` and stop on the target."""
    path = []
    for o in order[:max_len]:
        path.append(int(o))
        if o == target:
            break
    return path


def random_order(d: Display, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(d.n_objects)


def centre_out(d: Display) -> np.ndarray:
    c = d.centres
    dist = np.hypot(c[:, 0] - d.width / 2, c[:, 1] - d.height / 2)
    return np.argsort(dist, kind="stable")


def reading_order(d: Display) -> np.ndarray:
    rows, cols = d.rows_cols()
    return np.lexsort((d.centres[:, 0], rows))


def spectral_residual_saliency(image: np.ndarray) -> np.ndarray:
    """Saliency map (same size as the image) from OpenCV's spectral-residual detector."""
    import cv2

    sal = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, smap = sal.computeSaliency(np.ascontiguousarray(image[..., ::-1]))  # OpenCV wants BGR
    if not ok:
        raise RuntimeError("cv2.saliency failed")
    return cv2.resize(smap.astype(np.float32), (image.shape[1], image.shape[0]))


def saliency_order(d: Display, image: np.ndarray) -> np.ndarray:
    smap = spectral_residual_saliency(image)
    sx, sy = image.shape[1] / d.width, image.shape[0] / d.height
    score = []
    for x0, y0, x1, y1 in d.boxes:
        a, b = int(x0 * sx), max(int(x1 * sx), int(x0 * sx) + 1)
        c, e = int(y0 * sy), max(int(y1 * sy), int(y0 * sy) + 1)
        score.append(float(smap[c:e, a:b].mean()))
    return np.argsort(-np.array(score), kind="stable")


def rgb_similarity_order(d: Display) -> np.ndarray:
    if d.crops is None:
        raise ValueError("RGB similarity needs object images")
    mean = d.crops.reshape(d.n_objects, -1, 3).mean(1)
    tmean = d.target_crop.reshape(-1, 3).mean(0)
    return np.argsort(np.linalg.norm(mean - tmean, axis=1), kind="stable")


def baseline_scanpaths(name: str, displays: list[Display], images: dict | None = None, max_len: int = 40,
                       seed: int = 0) -> list[list[int]]:
    """One scanpath per display from baseline ``name`` (random, centre, reading, saliency, rgb)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in displays:
        if name == "random":
            order = random_order(d, rng)
        elif name == "centre":
            order = centre_out(d)
        elif name == "reading":
            order = reading_order(d)
        elif name == "saliency":
            order = saliency_order(d, images[d.name])
        elif name == "rgb":
            order = rgb_similarity_order(d)
        else:
            raise ValueError(f"unknown baseline {name}")
        out.append(visit_until_target(order, d.target, max_len))
    return out
