"""Search displays: read, validate and represent them (the shared human file's schema, extended).

A displays file is a JSON object mapping each display's name to::

    {"size": {"width": W, "height": H},
     "ground_truth": [{"xmin": .., "xmax": .., "ymin": .., "ymax": ..}],   # the target's box
     "target": "target.jpg",                         # informational
     "fixations": {"person": [[x, y], ...], ...},    # optional; ignored by predict
     "objects": [{"xmin": .., "xmax": .., "ymin": .., "ymax": .., "crop": "a.png"}, ...],  # optional
     "grid": [14, 6],                                # columns, rows; objects = grid cells when no "objects"
     "image": "display.png",                         # optional: object crops are cut from it
     "target_image": "target.png"}                   # optional: the target's appearance

This is the file of ``../shared/data/oat/amazon_covers_1-70.json`` (no objects, no images: each
of the 14 x 6 grid cells is an object, the layout-only mode) with optional object boxes and images.
Relative paths are read from the JSON file's folder. Fixations map to the object whose box holds
them, else the nearest box centre (``fixation_to_patch`` in the official ``img_feature_amazon.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError

DEFAULT_GRID = (14, 6)  # columns x rows of the Amazon book-cover collages


@dataclass
class Display:
    name: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float: xmin, ymin, xmax, ymax
    target: int  # index of the target object
    grid: tuple[int, int]  # (columns, rows) of the position code
    crops: np.ndarray | None = None  # (N, h, w, 3) uint8, None in layout-only mode
    target_crop: np.ndarray | None = None  # (h, w, 3) uint8
    scanpaths: dict[str, list[int]] = field(default_factory=dict)  # person -> object indices
    fixations: dict[str, np.ndarray] = field(default_factory=dict)  # person -> (n, 2) pixels
    target_box: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax as given
    image_path: Path | None = None  # the whole display's image, when given

    def image(self) -> np.ndarray:
        """The display's RGB image (for pixel-level peers and plots)."""
        if self.image_path is None:
            raise InputError(f"display {self.name!r}: no 'image' given")
        return _read_image(self.image_path, f"display {self.name!r} image")

    @property
    def n_objects(self) -> int:
        return len(self.boxes)

    @property
    def centres(self) -> np.ndarray:
        return np.stack([(self.boxes[:, 0] + self.boxes[:, 2]) / 2, (self.boxes[:, 1] + self.boxes[:, 3]) / 2], 1)

    def rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column index of each object's centre on the display's grid (the position code's input)."""
        cols, rows = self.grid
        c = self.centres
        col = np.clip(np.floor(c[:, 0] / self.width * cols), 0, cols - 1).astype(int)
        row = np.clip(np.floor(c[:, 1] / self.height * rows), 0, rows - 1).astype(int)
        return row, col

    def objects_of(self, points: np.ndarray) -> list[int]:
        """Object index of each fixation: the box that holds it, else the nearest box centre."""
        out = []
        b = self.boxes
        centres = self.centres
        for x, y in np.asarray(points, dtype=float).reshape(-1, 2):
            inside = np.nonzero((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]))[0]
            if len(inside):
                out.append(int(inside[0]))
            else:
                out.append(int(np.argmin(((centres - (x, y)) ** 2).sum(1))))
        return out


def grid_boxes(width: float, height: float, cols: int, rows: int) -> np.ndarray:
    """Boxes of a cols x rows grid of equal cells covering the display, in reading order."""
    xs = np.linspace(0, width, cols + 1)
    ys = np.linspace(0, height, rows + 1)
    return np.array([[xs[c], ys[r], xs[c + 1], ys[r + 1]] for r in range(rows) for c in range(cols)], dtype=float)


def _box(rec, what: str) -> tuple[float, float, float, float]:
    if not isinstance(rec, dict):
        raise InputError(f"{what}: a box must be an object with xmin, xmax, ymin, ymax")
    try:
        x0, x1, y0, y1 = (float(rec[k]) for k in ("xmin", "xmax", "ymin", "ymax"))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{what}: a box needs numeric xmin, xmax, ymin, ymax") from None
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or x1 <= x0 or y1 <= y0:
        raise InputError(f"{what}: box has xmax <= xmin or ymax <= ymin (or is not finite)")
    return x0, y0, x1, y1


_IMAGE_CACHE: dict = {}


def _read_image(path: Path, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    key = (str(path.resolve()), path.stat().st_mtime_ns) if path.is_file() else None
    if key in _IMAGE_CACHE:
        return _IMAGE_CACHE[key]
    if len(_IMAGE_CACHE) > 8:
        _IMAGE_CACHE.clear()
    if not path.is_file():
        raise InputError(f"{what}: image file not found: {path}")
    try:
        with Image.open(path) as im:
            _IMAGE_CACHE[key] = np.asarray(im.convert("RGB"))
            return _IMAGE_CACHE[key]
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{what}: cannot read image {path}: {err}") from None


def resize_crop(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize an RGB crop to (height, width), as the official preprocessing's cv.resize."""
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BILINEAR))


def parse_display(name: str, rec, base: Path, crop_hw: tuple[int, int] | None = (75, 48),
                  tolerance: float = 2.0) -> Display:
    """Validate one display record and build a :class:`Display` (crops resized to ``crop_hw``)."""
    what = f"display {name!r}"
    if not isinstance(rec, dict):
        raise InputError(f"{what}: must be a JSON object")
    size = rec.get("size")
    try:
        if isinstance(size, dict):
            width, height = float(size["width"]), float(size["height"])
        else:
            width, height = float(size[0]), float(size[1])
    except (KeyError, TypeError, ValueError, IndexError):
        raise InputError(f"{what}: 'size' must be {{\"width\": W, \"height\": H}}") from None
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise InputError(f"{what}: 'size' must be positive")

    def inside(box, label):
        x0, y0, x1, y1 = box
        if x0 < -tolerance or y0 < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
            raise InputError(f"{what}: {label} box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the "
                             f"{width:g} x {height:g} display")

    gt = rec.get("ground_truth")
    if isinstance(gt, dict):
        gt = [gt]
    if not isinstance(gt, list) or not gt:
        raise InputError(f"{what}: 'ground_truth' must hold the target's box")
    target_box = _box(gt[0], f"{what} ground_truth")
    inside(target_box, "target")

    grid = rec.get("grid", DEFAULT_GRID)
    try:
        grid = (int(grid[0]), int(grid[1]))
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        raise InputError(f"{what}: 'grid' must be [columns, rows]") from None
    if grid[0] < 1 or grid[1] < 1:
        raise InputError(f"{what}: 'grid' must be positive")

    objects = rec.get("objects")
    if objects is None:
        boxes = grid_boxes(width, height, *grid)
        crop_paths = None
    else:
        if not isinstance(objects, list):
            raise InputError(f"{what}: 'objects' must be a list")
        if not objects:
            raise InputError(f"{what}: empty display (no objects)")
        boxes = []
        crop_paths = []
        for i, obj in enumerate(objects):
            b = _box(obj, f"{what} object {i}")
            inside(b, f"object {i}")
            boxes.append(b)
            crop_paths.append(obj.get("crop"))
        boxes = np.array(boxes, dtype=float)
        if all(p is None for p in crop_paths):
            crop_paths = None
        elif any(p is None for p in crop_paths):
            raise InputError(f"{what}: some objects have a 'crop' and some do not")

    # the target: the object that overlaps the target box most
    tb = np.array(target_box)
    ix = np.clip(np.minimum(boxes[:, 2], tb[2]) - np.maximum(boxes[:, 0], tb[0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], tb[3]) - np.maximum(boxes[:, 1], tb[1]), 0, None)
    inter = ix * iy
    union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (tb[2] - tb[0]) * (tb[3] - tb[1]) - inter
    iou = inter / union
    if iou.max() <= 0:
        raise InputError(f"{what}: the target box overlaps no object")
    target = int(np.argmax(iou))

    crops = target_crop = None
    if crop_hw is not None:
        if crop_paths is not None:
            crops = np.stack([resize_crop(_read_image(base / p, f"{what} object {i} crop"), crop_hw)
                              for i, p in enumerate(crop_paths)])
        elif rec.get("image") is not None:
            img = _read_image(base / str(rec["image"]), f"{what} image")
            h, w = img.shape[:2]
            sx, sy = w / width, h / height
            cuts = []
            for x0, y0, x1, y1 in boxes:
                a, b_ = max(0, int(round(x0 * sx))), min(w, max(int(round(x1 * sx)), int(round(x0 * sx)) + 1))
                c, d = max(0, int(round(y0 * sy))), min(h, max(int(round(y1 * sy)), int(round(y0 * sy)) + 1))
                cuts.append(resize_crop(img[c:d, a:b_], crop_hw))
            crops = np.stack(cuts)
        if crops is not None:
            if rec.get("target_image") is not None:
                target_crop = resize_crop(_read_image(base / str(rec["target_image"]), f"{what} target_image"),
                                          crop_hw)
            else:
                target_crop = crops[target]

    disp = Display(name=name, width=int(round(width)), height=int(round(height)), boxes=boxes, target=target,
                   grid=grid, crops=crops, target_crop=target_crop, target_box=tuple(target_box),
                   image_path=(base / str(rec["image"])) if rec.get("image") is not None else None)
    fix = rec.get("fixations") or {}
    if isinstance(fix, list):
        fix = {str(i): f for i, f in enumerate(fix)}
    if not isinstance(fix, dict):
        raise InputError(f"{what}: 'fixations' must map each person to a list of [x, y]")
    for person, pts in fix.items():
        try:
            arr = np.asarray(pts, dtype=float).reshape(-1, 2)
        except (TypeError, ValueError):
            raise InputError(f"{what}: fixations of {person!r} must be a list of [x, y]") from None
        if len(arr) == 0:
            continue
        disp.fixations[str(person)] = arr
        disp.scanpaths[str(person)] = disp.objects_of(arr)
    return disp


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file holding one object (display name -> ``what``); a missing, non-UTF-8 or malformed
    file, or another JSON type, is an InputError naming the file (and the line, for bad JSON)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 JSON file") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping display names to {what}")
    return data


def load_displays(path: str | Path, crop_hw: tuple[int, int] | None = (75, 48)) -> list[Display]:
    """Read and validate a displays file; any problem raises InputError naming the file and display."""
    path = Path(path)
    data = read_json_object(path, "displays")
    if not data:
        raise InputError(f"{path}: expected a JSON object mapping display names to displays")
    out = []
    for name, rec in data.items():
        try:
            out.append(parse_display(str(name), rec, path.parent, crop_hw))
        except InputError as err:
            raise InputError(f"{path}: {err}") from None
    return out


def display_sort_key(name: str):
    """Natural order of display names ("2.jpg" before "10.jpg")."""
    stem = name.split(".")[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)
