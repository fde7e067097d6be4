"""Synthetic search displays and a SIMULATED searcher (not human data).

Products: procedurally drawn book-cover-like and product-like objects (a background colour, a shape,
text bars). Layouts: grids and irregular arrangements of products on a 1280 x 800 display. A display
is a (layout, target product) pair, as in the paper's leave-one-layout-out / leave-one-target-out tests.

The searcher is a Guided-Search-style simulation (Wolfe 1994, 2021): at each fixation every object has
a priority = target similarity (colour, shape, kind) + centre bias + reading-order bias + proximity to
the current fixation + noise; it fixates the most urgent object not yet inspected (inhibition of
return), sometimes refixates or revisits, and stops when it fixates and recognises the target or after
a maximum number of fixations. Fixations land near the object's centre with scatter. Its scanpaths test
whether a model can learn object-level guidance; they are not evidence about people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import atomic_write

WIDTH, HEIGHT = 1280, 800
SHAPES = ("circle", "square", "triangle", "diamond", "bar")
PALETTE = np.array([[200, 40, 40], [40, 120, 200], [40, 160, 70], [230, 190, 40], [140, 60, 170],
                    [240, 130, 40], [30, 30, 30], [235, 235, 225], [90, 200, 200], [230, 120, 170]], dtype=float)


@dataclass
class Product:
    pid: int
    kind: str  # "cover" or "product"
    colour: np.ndarray  # background / body RGB
    shape: str
    shape_colour: np.ndarray
    bars: int  # text bars
    bars_top: bool


def make_products(n: int, seed: int = 0) -> list[Product]:
    rng = np.random.default_rng(seed)
    out = []
    for pid in range(n):
        base = PALETTE[rng.integers(len(PALETTE))]
        colour = np.clip(base + rng.normal(0, 18, 3), 0, 255)
        shape_colour = np.clip(PALETTE[rng.integers(len(PALETTE))] + rng.normal(0, 18, 3), 0, 255)
        out.append(Product(pid, "cover" if rng.random() < 0.5 else "product", colour,
                           SHAPES[rng.integers(len(SHAPES))], shape_colour, int(rng.integers(1, 4)),
                           bool(rng.random() < 0.5)))
    return out


def draw_product(draw, p: Product, box) -> None:
    """Draw one product into box (x0, y0, x1, y1) with a PIL ImageDraw."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    col = tuple(int(v) for v in p.colour)
    scol = tuple(int(v) for v in p.shape_colour)
    if p.kind == "cover":
        draw.rectangle([x0, y0, x1, y1], fill=col, outline=(60, 60, 60))
    else:  # a bottle: neck and rounded body on a white shelf
        draw.rectangle([x0, y0, x1, y1], fill=(250, 250, 250))
        draw.rectangle([x0 + 0.38 * w, y0 + 0.04 * h, x0 + 0.62 * w, y0 + 0.25 * h], fill=col)
        draw.rounded_rectangle([x0 + 0.12 * w, y0 + 0.22 * h, x1 - 0.12 * w, y1 - 0.03 * h], radius=0.15 * w, fill=col)
    cx, cy, r = x0 + w / 2, y0 + 0.55 * h, 0.22 * min(w, h)
    if p.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=scol)
    elif p.shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=scol)
    elif p.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=scol)
    elif p.shape == "diamond":
        draw.polygon([(cx, cy - r), (cx - r, cy), (cx, cy + r), (cx + r, cy)], fill=scol)
    else:
        draw.rectangle([cx - 1.3 * r, cy - 0.35 * r, cx + 1.3 * r, cy + 0.35 * r], fill=scol)
    ink = (20, 20, 20) if sum(col) > 380 else (245, 245, 245)
    ytop = y0 + 0.08 * h if p.bars_top else y1 - 0.08 * h - p.bars * 0.07 * h
    if p.kind == "product":
        ytop = y0 + 0.3 * h if p.bars_top else y1 - 0.12 * h - p.bars * 0.07 * h
    for k in range(p.bars):
        yy = ytop + k * 0.07 * h
        draw.rectangle([x0 + 0.2 * w, yy, x1 - 0.2 * w - (k % 2) * 0.15 * w, yy + 0.035 * h], fill=ink)


def grid_layout(cols: int, rows: int, margin: float = 0.06) -> np.ndarray:
    """Boxes of a cols x rows shelf with gaps between products."""
    cw, rh = WIDTH / cols, HEIGHT / rows
    return np.array([[c * cw + margin * cw, r * rh + margin * rh, (c + 1) * cw - margin * cw,
                      (r + 1) * rh - margin * rh] for r in range(rows) for c in range(cols)])


def irregular_layout(n: int, rng: np.random.Generator) -> np.ndarray:
    """n non-overlapping boxes of varied size scattered over the display (rejection sampling)."""
    boxes = []
    tries = 0
    while len(boxes) < n and tries < 20000:
        tries += 1
        w = rng.uniform(70, 120)
        h = w * rng.uniform(1.3, 1.7)
        x0, y0 = rng.uniform(10, WIDTH - w - 10), rng.uniform(10, HEIGHT - h - 10)
        b = np.array([x0, y0, x0 + w, y0 + h])
        if all(b[2] + 8 < o[0] or o[2] + 8 < b[0] or b[3] + 8 < o[1] or o[3] + 8 < b[1] for o in boxes):
            boxes.append(b)
    order = sorted(range(len(boxes)), key=lambda i: (int(boxes[i][1] // 160), boxes[i][0]))
    return np.array([boxes[i] for i in order])


def similarity(a: Product, b: Product) -> float:
    """Guidance by target features: colour closeness, same shape, same kind (in [0, 1])."""
    colour = np.exp(-np.linalg.norm(a.colour - b.colour) / 90.0)
    return float(0.55 * colour + 0.3 * (a.shape == b.shape) + 0.15 * (a.kind == b.kind))


@dataclass
class SearcherParams:
    w_target: float = 0.5
    w_centre: float = 0.5
    w_reading: float = 0.35
    w_proximity: float = 2.0
    noise: float = 0.3
    p_refix: float = 0.06
    p_revisit: float = 0.06
    p_detect: float = 0.9
    max_fixations: int = 24
    scatter: float = 0.18


def simulate_search(boxes: np.ndarray, products: list[Product], target: int, rng: np.random.Generator,
                    params: SearcherParams | None = None) -> tuple[list[int], np.ndarray]:
    """One simulated scanpath (object indices) and its fixations in pixels."""
    params = params if params is not None else SearcherParams()
    n = len(boxes)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    diag = np.hypot(WIDTH, HEIGHT)
    sim = np.array([similarity(p, products[target]) for p in products])
    centre = -np.linalg.norm(centres - (WIDTH / 2, HEIGHT / 2), axis=1) / diag
    reading = -(np.arange(n) / max(n - 1, 1))  # boxes come in reading order
    static = params.w_target * sim + params.w_centre * centre + params.w_reading * reading
    here = np.array([WIDTH / 2, HEIGHT / 2])
    visited = np.zeros(n, dtype=bool)
    path: list[int] = []
    for _ in range(params.max_fixations):
        prox = -np.linalg.norm(centres - here, axis=1) / diag
        prio = static + params.w_proximity * prox + rng.normal(0, params.noise, n)
        u = rng.random()
        if path and u < params.p_refix:
            choice = path[-1]
        elif path and u < params.p_refix + params.p_revisit and visited.sum() > 1:
            cand = np.where(visited)[0]
            cand = cand[cand != path[-1]]
            choice = int(cand[np.argmax(prio[cand])])
        else:
            prio[visited] = -np.inf
            if np.isinf(prio).all():
                break
            choice = int(np.argmax(prio))
        path.append(choice)
        visited[choice] = True
        here = centres[choice]
        if choice == target and rng.random() < params.p_detect:
            break
    wh = np.stack([boxes[path, 2] - boxes[path, 0], boxes[path, 3] - boxes[path, 1]], 1)
    fix = centres[path] + rng.normal(0, params.scatter, (len(path), 2)) * wh
    return path, np.round(fix, 1)


@dataclass
class SynthSpec:
    """The corpus: which layouts and targets go to which split (fixed before any training)."""
    n_layouts: int = 40
    targets_per_layout: int = 8
    people: int = 4
    n_products: int = 60
    heldout_layouts: tuple = tuple(range(32, 40))  # test: leave-layouts-out
    valid_layouts: tuple = tuple(range(28, 32))
    heldout_targets: tuple = tuple(range(50, 60))  # test: leave-targets-out (never a training target)
    seed: int = 0
    # More training data only: extra simulated people on every training display and extra training
    # displays (other targets on the training layouts), drawn from a second random stream so that every
    # other split, and the first ``people`` scanpaths of each training display, equal the corpus without them.
    extra_train_people: int = 0
    extra_train_targets: int = 0


def layout_geometry(layout: int, rng: np.random.Generator) -> np.ndarray:
    kind = layout % 4
    if kind == 0:
        return grid_layout(8, 3)
    if kind == 1:
        return grid_layout(6, 4)
    if kind == 2:
        return grid_layout(7, 4)
    return irregular_layout(int(rng.integers(20, 29)), rng)


def split_of(layout: int, target_pid: int, spec: SynthSpec) -> str:
    if layout in spec.heldout_layouts:
        return "test_layout" if target_pid not in spec.heldout_targets else "test_both"
    if target_pid in spec.heldout_targets:
        return "test_target"
    if layout in spec.valid_layouts:
        return "valid"
    return "train"


def make_displays(out_dir: str | Path, spec: SynthSpec | None = None, progress: bool = False) -> dict:
    """Render every display to OUT/images/*.png and write OUT/<split>.json per split (shared schema).

    Returns the number of displays per split. Each display's objects list carries its box; crops
    are cut from its image; fixations are the simulated searcher's (one list per simulated person).
    """
    from PIL import Image, ImageDraw

    spec = spec if spec is not None else SynthSpec()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    extra = np.random.default_rng([spec.seed, 1])  # the extra training data's own stream
    products = make_products(spec.n_products, spec.seed)
    splits: dict[str, dict] = {}
    layouts = range(spec.n_layouts)
    if progress:
        from tqdm import tqdm

        layouts = tqdm(layouts, desc="layouts", unit="layout")
    for layout in layouts:
        boxes = layout_geometry(layout, rng)
        # products on this layout: always include some held-out targets as distractors or targets
        pids = rng.permutation(spec.n_products)[: len(boxes)]
        placed = [products[p] for p in pids]
        img = Image.new("RGB", (WIDTH, HEIGHT), (215, 205, 190))
        draw = ImageDraw.Draw(img)
        for p, b in zip(placed, boxes):
            draw_product(draw, p, b)
        img_name = f"layout{layout:02d}.png"
        img.save(out / "images" / img_name)
        objects = [{"xmin": round(float(b[0]), 1), "xmax": round(float(b[2]), 1), "ymin": round(float(b[1]), 1),
                    "ymax": round(float(b[3]), 1)} for b in boxes]
        grid = [8, 3] if layout % 4 == 0 else [6, 4] if layout % 4 == 1 else [7, 4] if layout % 4 == 2 else [10, 5]
        chosen = [int(t) for t in rng.choice(len(boxes), size=min(spec.targets_per_layout, len(boxes)),
                                             replace=False)]
        free = [t for t in range(len(boxes)) if t not in chosen and split_of(layout, int(pids[t]), spec) == "train"]
        more = [int(t) for t in extra.permutation(free)[: spec.extra_train_targets]] if free else []
        for k, t in enumerate(chosen + more):
            pid = int(pids[t])
            split = split_of(layout, pid, spec)
            fixations = {}
            people = spec.people if split != "train" else spec.people + spec.extra_train_people
            for person in range(people):
                _, fix = simulate_search(boxes, placed, t, rng if k < len(chosen) and person < spec.people else extra)
                fixations[str(person + 1)] = fix.tolist()
            name = f"L{layout:02d}_T{pid:02d}"
            rec = {"size": {"width": WIDTH, "height": HEIGHT}, "ground_truth": [objects[t]],
                   "target": f"product_{pid:02d}", "grid": grid, "image": f"images/{img_name}",
                   "objects": objects, "fixations": fixations, "layout": layout, "target_product": pid}
            splits.setdefault(split, {})[name] = rec
    for split, recs in splits.items():
        write_json_atomic(out / f"{split}.json", recs)
    return {k: len(v) for k, v in sorted(splits.items())}


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON through a temporary file and rename, mode 0644 (no partial output on failure)."""
    with atomic_write(path) as f:
        json.dump(obj, f)
