"""Predict, evaluate and plot scanpaths: the functions behind ``seqverse-vision oat predict/evaluate/plot``.

Predictions file (OUT.json): ``{display name: {"fixations": [[x, y], ...], "objects": [i, ...],
"samples": [[[x, y], ...], ...]}}`` -- fixations are the greedy scanpath at the fixated objects'
centres, in the display's pixels (official ``test_max``); ``samples`` holds N sampled scanpaths
(``test_expect``, 100 in the paper) when asked for.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError, atomic_path, atomic_write

from .decode import LANDING_DECODINGS
from .displays import Display, load_displays, read_json_object
from .metrics import (
    BEHAVIOUR_NAMES,
    MULTIMATCH_NAMES,
    behavioural_delta,
    levenshtein,
    mean_behaviour,
    multimatch,
    sequence_score,
)
from .refine import PIXELS, refined_scanpaths, refined_top_scanpaths


def default_model_dir() -> Path:
    """The embedded default checkpoint (trained on synthetic displays only)."""
    return Path(str(resources.files("seqverse.vision.oat") / "assets" / "oat-synthetic"))


def model_dirs(spec: str | Path | None) -> list[Path]:
    """Checkpoint folders of ``spec``: one folder, several joined by commas (an ensemble), or None for the
    embedded model. The first one's ``landing.json`` places the fixations (the landing model depends on the
    training data, not on the seed)."""
    return [Path(p) for p in str(spec).split(",")] if spec else [default_model_dir()]


def load_model(directory: str | Path | None = None):
    """The checkpoint in ``directory`` (default: the embedded one), or an :class:`~.ensemble.OATEnsemble` of
    several folders joined by commas."""
    from .ensemble import OATEnsemble
    from .model import OAT

    dirs = model_dirs(directory)
    for d in dirs:
        if not (d / "config.json").is_file() or not (d / "model.safetensors").is_file():
            raise InputError(f"{d}: not an OAT checkpoint (needs config.json and model.safetensors)")
        raw = json.loads((d / "config.json").read_text())
        if raw.get("model") not in ("oat", "OAT"):
            raise InputError(f"{d}: config.json is not an OAT model ({raw.get('model')!r})")
    if len(dirs) == 1:
        return OAT.from_pretrained(dirs[0])
    try:
        return OATEnsemble.from_pretrained(dirs)
    except ValueError as e:
        raise InputError(f"{directory}: {e}") from None


def predict_file(displays_path: str | Path, out_path: str | Path, model_dir: str | Path | None = None,
                 samples: int = 0, seed: int = 0, progress: bool = False, decoding: str = "greedy",
                 draws: int = 100, temperature: float = 1.0, pixels: str = "landing") -> dict:
    """Predict a scanpath (by ``decoding``, see :mod:`.decode`) and ``samples`` sampled ones for every
    display; write OUT.json atomically. ``pixels``: "landing" (the landing model's mean positions, object
    centres without one), "refined" (:mod:`.refine`; needs a landing model and a decoding that draws) or
    "refined_top" (the same for the best of the top draws, which also replaces the decoding's objects)."""
    import torch

    from .decode import decode
    from .landing import Landing
    from .train import predict_objects

    model = load_model(model_dir)
    landing = Landing.load(model_dirs(model_dir)[0])
    c = model.config
    displays = load_displays(displays_path, (c.crop_height, c.crop_width) if c.appearance else None)
    if c.appearance:
        missing = [d.name for d in displays if d.crops is None]
        if missing:
            raise InputError(f"{displays_path}: display {missing[0]!r} has no object images ('image' or object "
                             "'crop'), which this model needs; use a layout-only model (--model)")
    for d in displays:
        r, col = d.rows_cols()
        if max(d.grid) > c.table_size:
            raise InputError(f"{displays_path}: display {d.name!r}: grid {d.grid} exceeds the position code's "
                             f"{c.table_size} rows/columns")
    torch.manual_seed(seed)
    if decoding in LANDING_DECODINGS and landing is None:
        raise InputError(f"{model_dir or default_model_dir()}: decoding {decoding!r} needs a landing model "
                         "(landing.json, written by `oat train --human`)")
    if pixels not in PIXELS:
        raise ValueError(f"unknown pixels {pixels!r} (one of {', '.join(PIXELS)})")
    if pixels != "landing" and (landing is None or decoding == "greedy"):
        raise InputError(f"{model_dir or default_model_dir()}: --pixels {pixels} needs a landing model (landing.json, "
                         "written by `oat train --human`) and a decoding that draws (not greedy)")
    drawn: list = []
    greedy = decode(model, displays, decoding, n=draws, temperature=temperature, seed=seed, landing=landing,
                    draws_out=drawn)
    refined = None
    if pixels == "refined":
        refined = refined_scanpaths(displays, greedy, drawn, landing, seed=seed, progress=progress)
    elif pixels == "refined_top":
        greedy, refined = refined_top_scanpaths(displays, drawn, landing, seed=seed, progress=progress)
    sampled = None
    if samples:
        it = displays
        if progress:
            from tqdm import tqdm

            it = tqdm(displays, desc="sampling", unit="display")
        sampled = [predict_objects(model, [d], sample=True, n=samples, seed=seed + k, temperature=temperature)[0]
                   for k, d in enumerate(it)]
    result = {}
    for k, d in enumerate(displays):
        rec = {"fixations": refined[k].tolist() if refined is not None else _pixels(d, greedy[k], landing),
               "objects": greedy[k]}
        if sampled is not None:
            rec["samples"] = [_pixels(d, s, landing) for s in sampled[k]]
        result[d.name] = rec
    with atomic_write(out_path) as f:
        json.dump(result, f)
    return {"displays": len(displays), "samples_per_display": samples, "decoding": decoding, "pixels": pixels,
            "mean_length": float(np.mean([len(g) for g in greedy]))}


def _pixels(d: Display, objects: list[int], landing=None) -> list:
    """An object scanpath in pixels: object centres, or the landing model's positions when there is one."""
    if not objects:
        return []
    return np.round(landing.place(d, objects) if landing is not None else d.centres[objects], 1).tolist()


def _read_predictions(path: str | Path) -> dict:
    path = Path(path)
    data = read_json_object(path, "predictions")
    out = {}
    for name, rec in data.items():
        pts = rec.get("fixations") if isinstance(rec, dict) else rec
        try:
            arr = np.asarray(pts, dtype=float).reshape(-1, 2)
        except (TypeError, ValueError):
            raise InputError(f"{path}: display {name!r}: fixations must be a list of [x, y]") from None
        samples = []
        if isinstance(rec, dict) and rec.get("samples"):
            try:
                samples = [np.asarray(s, dtype=float).reshape(-1, 2) for s in rec["samples"]]
            except (TypeError, ValueError):
                raise InputError(f"{path}: display {name!r}: samples must be lists of [x, y]") from None
        out[name] = (arr, samples)
    return out


def _people(d: Display) -> list[tuple[list[int], np.ndarray | None]]:
    """Each person's scanpath as object indices, with their raw fixation pixels (None when not given)."""
    return [(h, d.fixations.get(person)) for person, h in d.scanpaths.items()]


def _multimatch_pair(d: Display, pred_xy: np.ndarray, h: list[int], raw: np.ndarray | None):
    """(official, centres-only) MultiMatch of one prediction against one person.

    Official, as ``src/evaluation/MM/calculate_mm.py``: the person's raw fixation pixels (``item['X']``,
    ``item['Y']``) against the prediction's object centres; without raw pixels both are the centres one.
    """
    size = (d.width, d.height)
    centres = multimatch(pred_xy, d.centres[h], size)
    return (centres if raw is None else multimatch(pred_xy, raw, size)), centres


def _mean_multimatch(out: dict, rows: list[np.ndarray], key: str, prefix: str) -> None:
    m = np.mean(rows, axis=0)
    out[key] = float(m.mean())
    out.update({f"{prefix}{k}": float(v) for k, v in zip(MULTIMATCH_NAMES, m)})


def score_scanpaths(displays: list[Display], preds: list[list[list[int]]], multimatch_too: bool = True,
                    landing=None, pixels: list[list] | None = None) -> dict:
    """Metrics of predicted object scanpaths (several per display allowed) against every person's.

    Sequence score, Levenshtein and MultiMatch average over (prediction, person) pairs; the
    behavioural measures average over scanpaths and the delta compares them with the people's.
    ``multimatch`` is the official comparison (prediction's object centres vs the person's raw
    fixations); ``multimatch_centres`` puts the person's scanpath on object centres too, where every
    refixation becomes a zero-length saccade (which MultiMatch reads as a rightward one). With a
    ``landing`` model the prediction's pixels are its landing positions instead of object centres; ``pixels``
    (per display, one (n, 2) array per prediction) gives them outright.
    """
    ss, lev, mm, mmc, pred_all, tgt_pred, human_all, tgt_human = [], [], [], [], [], [], [], []
    for k, (d, ps) in enumerate(zip(displays, preds)):
        people = _people(d)
        human_all += [h for h, _ in people]
        tgt_human += [d.target] * len(people)
        for m, p in enumerate(ps):
            pred_all.append(p)
            tgt_pred.append(d.target)
            xy = pixels[k][m] if pixels is not None else _pixels(d, p, landing)
            p_xy = np.asarray(xy, dtype=float).reshape(-1, 2)
            for h, raw in people:
                ss.append(sequence_score(p, h))
                lev.append(levenshtein(p, h))
                if multimatch_too:
                    official, centres = _multimatch_pair(d, p_xy, h, raw)
                    mm.append(official)
                    mmc.append(centres)
    pb, hb = mean_behaviour(pred_all, tgt_pred), mean_behaviour(human_all, tgt_human)
    out = {"sequence_score": float(np.mean(ss)), "levenshtein": float(np.mean(lev)),
           "behavioural_delta": behavioural_delta(pb, hb)}
    if multimatch_too:
        _mean_multimatch(out, mm, "multimatch", "mm_")
        _mean_multimatch(out, mmc, "multimatch_centres", "mmc_")
    out.update({f"pred_{k}": float(v) for k, v in zip(BEHAVIOUR_NAMES, pb)})
    out.update({f"human_{k}": float(v) for k, v in zip(BEHAVIOUR_NAMES, hb)})
    return out


def inter_human(displays: list[Display], multimatch_too: bool = True) -> dict:
    """Ceiling: each person's scanpath as the prediction of the other people on the same display.

    MultiMatch: the predicting person's scanpath on object centres (as a model's prediction) against
    the others' raw fixations; ``multimatch_centres`` with both on object centres; ``multimatch_raw``
    (when every person has raw fixations) with both on their raw fixations, the people as they are.
    """
    ss, mm, mmc, mmr, lev = [], [], [], [], []
    for d in displays:
        people = _people(d)
        for i, (p, own_raw) in enumerate(people):
            for j, (h, raw) in enumerate(people):
                if i == j:
                    continue
                ss.append(sequence_score(p, h))
                lev.append(levenshtein(p, h))
                if multimatch_too:
                    official, centres = _multimatch_pair(d, d.centres[p], h, raw)
                    mm.append(official)
                    mmc.append(centres)
                    if own_raw is not None and raw is not None:
                        mmr.append(multimatch(own_raw, raw, (d.width, d.height)))
    out = {"sequence_score": float(np.mean(ss)), "levenshtein": float(np.mean(lev)), "behavioural_delta": 0.0}
    if multimatch_too:
        _mean_multimatch(out, mm, "multimatch", "mm_")
        _mean_multimatch(out, mmc, "multimatch_centres", "mmc_")
        if len(mmr) == len(mm):
            _mean_multimatch(out, mmr, "multimatch_raw", "mmr_")
    return out


def evaluate_files(pred_path: str | Path, human_path: str | Path, use_samples: bool = False) -> dict:
    """Metrics of a predictions file against a displays file with people's fixations (by display name).

    The sequence score and behavioural measures read the objects the predicted fixations fall in; MultiMatch
    compares the predicted pixels themselves with the people's raw fixations (as the official
    ``calculate_mm.py``), so landing or refined pixels are scored as written, not moved to object centres."""
    displays = load_displays(human_path, crop_hw=None)
    preds = _read_predictions(pred_path)
    missing = [d.name for d in displays if d.name not in preds]
    if missing:
        raise InputError(f"{pred_path}: no prediction for display {missing[0]!r} of {human_path}")
    no_people = [d.name for d in displays if not d.scanpaths]
    if no_people:
        raise InputError(f"{human_path}: display {no_people[0]!r} has no fixations to compare with")
    obj_preds, pixels = [], []
    for d in displays:
        fix, samples = preds[d.name]
        chosen = samples if (use_samples and samples) else [fix]
        obj_preds.append([d.objects_of(s) if len(s) else [] for s in chosen])
        pixels.append(chosen)
    out = score_scanpaths(displays, obj_preds, pixels=pixels)
    out["displays"] = len(displays)
    return out


def plot_file(displays_path: str | Path, pred_path: str | Path, out_dir: str | Path, limit: int | None = None,
              person: str | None = None) -> list[str]:
    """One PNG per display: the display with the predicted scanpath (left) and a person's (right), numbered."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    displays = load_displays(displays_path, crop_hw=None)
    preds = _read_predictions(pred_path)
    out_dir = Path(out_dir)
    written = []
    for d in displays[: limit or len(displays)]:
        if d.name not in preds:
            raise InputError(f"{pred_path}: no prediction for display {d.name!r}")
        panels = [("predicted", preds[d.name][0])]
        if d.fixations:
            who = person if person in d.fixations else next(iter(d.fixations))
            panels.append((f"person {who}", d.fixations[who]))
        fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.4), squeeze=False)
        img = d.image() if d.image_path is not None else None
        for ax, (title, pts) in zip(axes[0], panels):
            if img is not None:
                ax.imshow(img, extent=(0, d.width, d.height, 0))
            else:
                for x0, y0, x1, y1 in d.boxes:
                    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.4, color="0.6"))
            x0, y0, x1, y1 = d.boxes[d.target]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2.5, color="lime"))
            if len(pts):
                ax.plot(pts[:, 0], pts[:, 1], "-", color="red", lw=1.5, alpha=0.8)
                for k, (x, y) in enumerate(pts, 1):
                    ax.scatter([x], [y], s=170, color="red", edgecolor="white", zorder=3)
                    ax.text(x, y, str(k), color="white", ha="center", va="center", fontsize=7, zorder=4)
            ax.set_xlim(0, d.width)
            ax.set_ylim(d.height, 0)
            ax.set_title(f"{d.name}: {title} ({len(pts)} fixations)")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in d.name)
        target = out_dir / f"{Path(safe).stem}.png"
        with atomic_path(target, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)
        written.append(str(target))
    return written
