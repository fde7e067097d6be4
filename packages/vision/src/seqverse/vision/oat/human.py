"""The Amazon book-cover human scanpaths (layout-only mode) and their fixed split by collage.

Data: ``../shared/data/oat/amazon_covers_1-70.json`` (Sattar et al. CVPR 2015; Stauden, Barz and
Sonntag KI 2018; CC BY-NC-SA 4.0), read in place, never copied. Each collage is a 14 x 6 grid of
covers; without the images, each grid cell is an object with a position and no appearance.

Split (fixed before any run): collage number k (from "k.jpg") is test if k % 7 == 0 (7, 14, ..., 70:
10 collages), validation if k % 7 == 3 (3, 10, ..., 66: 10 collages), training otherwise (50).
Selection uses validation only; test is evaluated once per final model.

Cross-validation (``fold`` 1-6, ours): the same rule rotated, test k % 7 == fold and validation
k % 7 == (fold + 3) % 7, so that over folds 0-6 every collage is a test collage exactly once (70 held-out
collages instead of 10). Fold 0 is the fixed split above.
"""

from __future__ import annotations

import json
from pathlib import Path

from seqverse.core.clikit import InputError, read_record_field

from .displays import Display, display_sort_key, load_displays

HUMAN_FILE = "amazon_covers_1-70.json"
SPLIT_FILE = "human_split.json"  # beside a human model's checkpoint: the fold it was trained for


def default_data_dir() -> Path:
    """``../shared/data/oat`` relative to the repository root (the working directory of benchmarks)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data" / "oat"
        if (parent / "packages").is_dir() and cand.is_dir():
            return cand
    return Path("../shared/data/oat")


FOLDS = 7


def split_of(name: str, fold: int = 0) -> str:
    """"train", "valid" or "test" for collage ``name`` ("k.jpg") in cross-validation fold ``fold``."""
    if not 0 <= fold < FOLDS:
        raise ValueError(f"fold {fold}: expected 0-{FOLDS - 1}")
    k = int(name.split(".")[0])
    if k % FOLDS == fold:
        return "test"
    if k % FOLDS == (fold + 3) % FOLDS:
        return "valid"
    return "train"


def write_recorded_fold(model_dir: str | Path, fold: int) -> None:
    (Path(model_dir) / SPLIT_FILE).write_text(json.dumps({"fold": fold}) + "\n")


def recorded_fold(model_dir: str | Path) -> int | None:
    """The fold a human model was trained for, or None when its directory does not record one."""
    path = Path(model_dir) / SPLIT_FILE
    fold = read_record_field(path, "fold", "fold record")
    if fold is not None and fold not in range(FOLDS):
        raise InputError(f"{path}: fold {fold!r} is not one of 0-{FOLDS - 1}")
    return fold


def load_human(path: str | Path | None = None, fold: int = 0) -> dict[str, list[Display]]:
    """{"train", "valid", "test"}: layout-only displays with each person's scanpath (fold 0: the fixed split)."""
    path = Path(path) if path else default_data_dir() / HUMAN_FILE
    out: dict[str, list[Display]] = {"train": [], "valid": [], "test": []}
    for d in sorted(load_displays(path, crop_hw=None), key=lambda d: display_sort_key(d.name)):
        out[split_of(d.name, fold)].append(d)
    return out
