"""Localization-free page reading (paper Sec. 3.3): split a page into N horizontal chunks, read each,
join the chunk texts in reading order.

The paper splits a page into N *equal* chunks. Here each border is moved to the emptiest pixel row
(row ink projection) within half a chunk of its equal-split position, so a border falls between text
lines instead of through one (``snap=False`` gives the paper's plain equal split). Blank chunks are
skipped; a line repeated on both sides of a border is kept once. Chunks of all pages in a call are
decoded in batches.

Input pages are validated one by one: an unreadable or non-image file, or a zero-size image, gives
that page an ``error`` and the others still finish. Pages larger than ``MAX_PIXELS`` are refused
(decompression-bomb guard); any page is first scaled to the model's scale: its line pitch measured
from the ink (:func:`line_pitch`) becomes the model's ``line_pitch`` (models trained since issue 25), or
its width becomes the model's page width (older models).

``lines=True`` (models scaled by line pitch) makes a chunk of every printed line: a tilted page is levelled
first (:func:`skew_angle`, ``DESKEW``), then :func:`line_borders` takes the inked runs between blank rows and
cuts a run taller than one pitch at clear valleys of its ink profile (:func:`valley_borders`; runs taller than
1.5 pitches with no valley at their emptiest rows), and :func:`trim` gives each its band (a thin line's ink at
the baseline, ``THIN_LINES``): each chunk then holds one printed line, which lets ``decoder="joint"`` add the
encoder's CTC head to the decoder's scores (:mod:`.joint`), a check on loops and early stops that is
valid for single lines only. ``crop=True`` cuts each chunk to its inked columns and some paper (a short line
on a wide receipt costs about its own width). A model's exported ``reading`` settings are its defaults.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 89_000_000  # just under PIL's decompression-bomb warning
DEFAULT_CHUNKS = 15


class PageError(ValueError):
    """A page that cannot be read; the message names the file."""


def open_page(path: str | Path) -> Image.Image:
    """Open one page as grayscale, or raise :class:`PageError` saying what is wrong with it."""
    p = Path(path)
    if not p.is_file():
        raise PageError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w == 0 or h == 0:
                raise PageError(f"{p}: zero-size image ({w}x{h})")
            if w * h > MAX_PIXELS:
                raise PageError(f"{p}: image of {w}x{h} pixels is larger than the {MAX_PIXELS:,}-pixel limit; "
                                "downscale it first")
            return im.convert("L")
    except PageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise PageError(f"{p}: not a readable image ({err.__class__.__name__})") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise PageError(f"{p}: not a readable image ({err})") from None


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Ink pixels: darker than the paper level by a margin.

    The margin is max(40, 0.3 x paper), or half the image's own ink contrast (paper minus its darkest
    0.2% of pixels) when that is smaller: on a strongly faded page the fixed margin leaves faint lines
    without any ink, and their chunks would be skipped as blank.
    """
    paper, dark = np.percentile(gray, [90, 0.2])  # one partial sort for both
    return gray < paper - min(max(40.0, 0.3 * paper), max(20.0, 0.5 * (paper - dark)))


def ink_profile(gray: np.ndarray) -> np.ndarray:
    """Number of ink pixels per row (:func:`ink_mask`)."""
    return ink_mask(gray).sum(axis=1)


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return edges[::2], edges[1::2]


def _autocorrelation(prof: np.ndarray) -> np.ndarray:
    p = prof - prof.mean()
    ac = np.correlate(p, p, "full")[len(p) - 1:]
    return ac / (ac[0] + 1e-12)


def _first_peak(ac: np.ndarray, clear: float) -> float | None:
    """The autocorrelation's first local maximum after its first dip below zero (lag >= 6), refined by a
    parabola, if it reaches ``clear``."""
    below = np.flatnonzero(ac < 0)
    if below.size:
        for k in range(max(6, int(below[0])), len(ac) - 1):
            if ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1]:
                if ac[k] < clear:
                    return None
                a, b, c = ac[k - 1], ac[k], ac[k + 1]
                return float(k + ((a - c) / (2 * (a - 2 * b + c)) if a - 2 * b + c != 0 else 0.0))
    return None


PITCH_STRIP_PX = 160  # strips for the second estimate: a 3-degree tilt moves a line 8 px across one


def line_pitch(gray: np.ndarray) -> float | None:
    """The page's text line pitch in pixels, from its ink alone (None for a page without ink).

    The row ink profile of printed lines is periodic. Its autocorrelation's first peak after the
    first dip below zero is the pitch when that peak is clear (>= 0.3). On a tilted or warped page
    with tight line spacing the whole-width profile smears lines into each other, so next the
    autocorrelations of vertical strips ``PITCH_STRIP_PX`` wide are summed (each weighted by its
    profile's variance) and their first peak (if >= 0.1) is compared with the median distance between
    the starts of consecutive runs of text rows (for fewer than three runs 1.3 x their median height):
    the smaller wins, since merged lines make the runs' estimate too long and a weak first peak can
    be the second line's. A text row holds more ink than a tenth of the page's 95th-percentile row,
    so scan noise and speckle between lines do not join them. Measured on 180 synthetic pages
    (held-out, own, validation, Lato and training seeds; runs/ocr probe): pitch off by more than 10%
    on 13 before the strips, on 6 after, none of them newly.
    """
    mask = ink_mask(gray)
    smooth = np.ones(3) / 3
    prof = np.convolve(mask.sum(1).astype(np.float64), smooth, mode="same")
    if not prof.any():
        return None
    pitch = _first_peak(_autocorrelation(prof), 0.3)
    if pitch is not None:
        return pitch
    n = max(1, round(gray.shape[1] / PITCH_STRIP_PX))
    acs = []
    for k in range(n):
        strip = np.convolve(mask[:, k * gray.shape[1] // n:(k + 1) * gray.shape[1] // n].sum(1).astype(np.float64),
                            smooth, mode="same")
        if strip.var() > 0:
            acs.append(_autocorrelation(strip) * strip.var())
    strips = _first_peak(np.sum(acs, 0) / np.sum(acs, 0)[0], 0.1) if acs else None
    starts, ends = _runs(prof > 0.1 * np.percentile(prof, 95))
    runs = ends - starts
    pitch = float(np.median(np.diff(starts))) if len(starts) >= 3 else float(1.3 * np.median(runs))
    return min(pitch, strips) if strips else pitch


def chunk_borders_equal(height: int, n: int) -> list[int]:
    """The paper's split: N equal horizontal chunks."""
    return [round(k * height / n) for k in range(n + 1)]


def chunk_borders(gray: np.ndarray, n: int, snap: bool = True, prof: np.ndarray | None = None) -> list[int]:
    """Chunk borders (N+1 row indices), each snapped to the emptiest row near its equal-split place
    (``prof``: the page's :func:`ink_profile`, when the caller has it already)."""
    if not snap or n == 1:
        return chunk_borders_equal(gray.shape[0], n)
    return snapped_borders((ink_profile(gray) if prof is None else prof).astype(np.float64), n)


def snapped_borders(prof: np.ndarray, n: int) -> list[int]:
    """N equal chunks of the rows of ``prof`` (a row ink profile), each inner border moved to the
    emptiest row within half a chunk of its place (the nearest of equals)."""
    h = len(prof)
    borders = chunk_borders_equal(h, n)
    half = h / n / 2
    out = [0]
    for k in range(1, n):
        target = borders[k]
        lo, hi = max(out[-1] + 1, int(target - half)), min(h - 1, int(target + half))
        if hi <= lo:
            out.append(max(out[-1], min(h, target)))
            continue
        window = prof[lo:hi + 1]
        cands = np.flatnonzero(window == window.min()) + lo
        out.append(int(cands[np.argmin(np.abs(cands - target))]))
    out.append(h)
    return out


def line_borders(prof: np.ndarray, pitch: float, width: int) -> list[int]:
    """Borders of one chunk a printed line, from the row ink profile: rows with (almost) no ink are
    gaps, each inked run between gaps is a line, and a run taller than 1.5 line pitches (lines touching,
    a rotated page) is cut into as many pitch-high chunks by :func:`snapped_borders`. Borders sit in the
    middle of gaps. Unlike a grid of one pitch a chunk, it follows each line where the spacing varies
    (blank lines, large type), so two lines do not share a chunk."""
    h = len(prof)
    runs: list[tuple[int, int]] = []
    for start, end in zip(*_runs(prof > max(1.0, 0.002 * width))):
        if runs and start - runs[-1][1] < max(2, 0.1 * pitch):  # an i's dot, a speck: the same line
            runs[-1] = (runs[-1][0], int(end))
        else:
            runs.append((int(start), int(end)))
    out = [0]
    for k, (a, b) in enumerate(runs):
        if LINE_SEGMENTATION == "valleys":
            out += valley_borders(prof, a, b, pitch)
        elif b - a > 1.5 * pitch:
            out += tall_run_borders(prof, a, b, pitch)
        if k + 1 < len(runs):
            out.append((b + runs[k + 1][0]) // 2)
    return out + [h]


def tall_run_borders(prof: np.ndarray, a: int, b: int, pitch: float) -> list[int]:
    """Inner borders of the inked run ``[a, b)``: as many pitch-high chunks as it holds, each border at the
    emptiest row near its equal-split place (:func:`snapped_borders`)."""
    inner = snapped_borders(prof[a:b].astype(np.float64), max(1, round((b - a) / pitch)))
    return [a + x for x in inner[1:-1]]


VALLEY_SHARE = 0.1  # a cut row holds at most this share of the weaker side's fullest row
LINE_LIKE_SHARE = 0.25  # and each side's fullest row at least this share of the other's


def valley_borders(prof: np.ndarray, a: int, b: int, pitch: float) -> list[int]:
    """Inner borders of the inked run ``[a, b)`` at clear valleys of the row ink profile.

    The gap segmentation keeps a run whole up to 1.5 pitches, so a rule or a row of leader dots printed
    close above a text line, or two lines with one faint row between them, share a chunk, and the model,
    trained on one line a band, reads one of them. Validation pages (benchmarks/vision/ocr_segcheck.py): 22 of
    875 lines sat in shared chunks. A run taller than one pitch is cut at its emptiest interior row
    whose ink is at most ``VALLEY_SHARE`` of the fuller row on each side, where both sides look like
    lines (each side's fullest row at least ``LINE_LIKE_SHARE`` of the other's: an i's dots above its
    line do not), and the parts are cut again; a run over 1.5 pitches with no such valley (lines touching
    on a rotated page) falls back to :func:`tall_run_borders`."""
    if b - a <= pitch:
        return []
    run = prof[a:b].astype(np.float64)
    middle = (len(run) - 1) / 2
    for r in sorted(range(1, len(run) - 1), key=lambda i: (run[i], abs(i - middle))):
        if run[r] > VALLEY_SHARE * run.max():
            break
        weak, strong = sorted((run[:r].max(), run[r + 1:].max()))
        if run[r] <= VALLEY_SHARE * weak and weak >= LINE_LIKE_SHARE * strong:
            return valley_borders(prof, a, a + r, pitch) + [a + r] + valley_borders(prof, a + r, b, pitch)
    return tall_run_borders(prof, a, b, pitch) if b - a > 1.5 * pitch else []


MIN_LINE_PX = 12  # width-scaled (pre issue 25) models: the smallest line pitch at page width 384
# --crop keeps one line pitch of paper left of the ink and four right of it: training lines run to the
# page's right edge, and on validation pages a one-pitch right margin read worse (word F1 65.0 vs 66.5)
CROP_LEFT_PITCHES, CROP_RIGHT_PITCHES = 1, 4
INK_ABOVE, INK_BELOW, MIN_CHUNK_PX = 5, 8, 20  # blank rows kept around the ink, as in training crops


# "centred": a thin chunk's ink sits in the middle of its band (until 2026-12-07); "baseline": where a dot or
# a word without ascenders sits in a training band (trim's docstring)
THIN_LINES = "baseline"
THIN_SHARE = 0.45  # a chunk whose ink is at most this share of the line pitch tall is thin
BASELINE_AT = 0.72  # a training band's ink bottom for dots, x-height words: 0.72 pitch below its top


def trim(gray: np.ndarray, top: int, bottom: int, prof: np.ndarray, pitch: float | None = None) -> tuple[int, int] | None:
    """Cut a chunk to its inked rows with the blank margins a training band has; None if blank.

    Training bands run from a line box's top (about 5 rows above the ink) to its bottom (about 8
    rows below), so the chunk keeps up to ``INK_ABOVE`` blank rows above its first ink row and
    ``INK_BELOW`` below its last, and a thin chunk (a rule line of dashes is 1-2 rows of ink) is
    widened through blank rows to ``MIN_CHUNK_PX``, the ink centred. With ``pitch`` (line reading) and
    ``THIN_LINES = "baseline"`` (the default since 2026-12-07), a chunk whose ink is at most ``THIN_SHARE``
    pitch tall gets a band one pitch tall with the ink's bottom ``BASELINE_AT`` pitch below its top, where
    a training band holds dots and words without ascenders: centred, a row of dots sat where asterisks
    sit in training and was read as asterisks (v9 on validation pages: mean CER 3.72 vs 4.69). The margins
    may reach past the chunk border into blank rows, never into a neighbour's ink.
    """
    rows = np.flatnonzero(prof[top:bottom] > 0)
    if rows.size == 0 or prof[top:bottom].sum() < 0.002 * gray.shape[1] * max(1, bottom - top):
        return None
    h = len(prof)
    lo, hi = top + rows[0], top + rows[-1] + 1

    def grow(lo, hi, up, down):
        while up > 0 and lo > 0 and prof[lo - 1] == 0:
            lo, up = lo - 1, up - 1
        while down > 0 and hi < h and prof[hi] == 0:
            hi, down = hi + 1, down - 1
        return lo, hi

    if pitch and THIN_LINES == "baseline" and hi - lo <= THIN_SHARE * pitch:
        band_top = hi - round(BASELINE_AT * pitch)
        return grow(lo, hi, lo - band_top, band_top + round(pitch) + 1 - hi)
    lo, hi = grow(lo, hi, INK_ABOVE, INK_BELOW)
    if hi - lo < MIN_CHUNK_PX:
        extra = MIN_CHUNK_PX - (hi - lo)
        lo, hi = grow(lo, hi, extra // 2, extra - extra // 2)
    return lo, hi


def clip_chunk_text(text: str, height: int, width: int, pitch: float) -> str:
    """A loop guard, the same for any page: greedy decoding sometimes falls into a loop (a rule line
    that never ends, a word repeated). A chunk ``height`` px tall holds at most ``height / (0.6 x
    pitch) + 1`` lines, and a line ``width`` px wide at most ``width / (0.2 x pitch)`` characters (no
    glyph is narrower than a fifth of the line pitch), so anything beyond that is cut."""
    lines = text.split("\n")[: int(height / (0.6 * pitch)) + 1]
    return "\n".join(ln[: int(width / (0.2 * pitch)) + 1] for ln in lines)


def join_chunks(texts: list[str]) -> str:
    """Join chunk texts in reading order; a line cut at a border and read twice is kept once."""
    lines: list[str] = []
    for t in texts:
        new = [ln for ln in t.split("\n") if ln.strip()]
        if lines and new and " ".join(new[0].split()) == " ".join(lines[-1].split()):
            new = new[1:]
        lines += new
    return "\n".join(lines)


@dataclass
class PageResult:
    """One input file's reading: its text (the pages of a PDF or multi-page TIFF joined by form feeds)
    or the error that stopped it."""

    image: str
    text: str | None = None
    error: str | None = None
    chunks: int = 0
    pages: int = 1


def auto_chunks(height: int, proc) -> int:
    """Chunks for a page scaled by line pitch: each about 0.6 x the model's input height, so a chunk
    whose borders moved to line gaps (up to half a chunk) still fits the input."""
    return max(1, math.ceil(height / (0.6 * proc.cfg.image_height)))


# "gaps": a chunk per inked run (runs over 1.5 pitches cut evenly); "valleys": the same, runs over one pitch
# also cut at clear valleys (valley_borders); "grid": one chunk a line pitch, borders snapped (until 2026-12-07)
LINE_SEGMENTATION = "valleys"


def line_chunks(height: int, proc) -> int:
    """One chunk per line pitch of a page scaled by line pitch (``read_pages(..., lines=True)``)."""
    return max(1, round(height / proc.cfg.line_pitch))


DESKEW = True  # line reading rotates a tilted page level first (skew_angle; chosen on validation 2026-12-07)
DESKEW_GAIN = 1.05  # the sharpest sheared profile must beat the unsheared one by this factor


def _shear_sharpness(ys: np.ndarray, xs: np.ndarray, degrees: float) -> float:
    """Sum of squares of the row histogram of ink pixels sheared by ``degrees``: largest when the text
    lines run along rows."""
    rows = np.round(ys + xs * math.tan(math.radians(degrees))).astype(np.int64)
    return float(np.square(np.bincount(rows - rows.min()).astype(np.float64)).sum())


def skew_angle(mask: np.ndarray, limit: float = 3.0) -> float:
    """The page's text tilt in degrees: the counter-clockwise rotation (``Image.rotate``) that levels it
    (positive: lines fall to the right), 0.0 when no angle makes the ink's row profile clearly sharper.

    Projection-profile search: angles -limit..limit 0.5 apart, then 0.125 apart around the best (each a
    shear of the ink pixels' coordinates, no image rotation), the winner kept only if its sharpness beats
    the unsheared profile's by ``DESKEW_GAIN``. Chosen on validation pages never read before (v9, pages
    20-39: mean word F1 80.79 vs 78.27, CER 6.23 vs 7.96)."""
    ys, xs = np.nonzero(mask)
    if ys.size < 50:
        return 0.0
    xs = xs - mask.shape[1] / 2
    seen: dict[float, float] = {}

    def sharpness(a: float) -> float:  # each angle's profile once (0.0 and the coarse best come back)
        a = round(float(a), 3)
        if a not in seen:
            seen[a] = _shear_sharpness(ys, xs, a)
        return seen[a]

    coarse = max(np.arange(-limit, limit + 1e-9, 0.5), key=sharpness)
    best = round(float(max(coarse + np.arange(-0.375, 0.376, 0.125), key=sharpness)), 3)
    return -best if sharpness(best) >= DESKEW_GAIN * sharpness(0.0) else 0.0


LAYOUT_SETTINGS = ("LINE_SEGMENTATION", "THIN_LINES", "DESKEW")  # the page layout analysis of line reading


@contextmanager
def page_layout(**settings):
    """Read with other page layout settings (names in ``LAYOUT_SETTINGS``) inside the block, e.g.
    ``page_layout(LINE_SEGMENTATION="gaps", THIN_LINES="centred", DESKEW=False)``, the reading before
    2026-12-07; the module's settings are restored after it."""
    unknown = set(settings) - set(LAYOUT_SETTINGS)
    if unknown:
        raise ValueError(f"not a page layout setting: {sorted(unknown)} (known: {list(LAYOUT_SETTINGS)})")
    module = sys.modules[__name__]
    saved = {k: getattr(module, k) for k in LAYOUT_SETTINGS}
    try:
        for k, v in settings.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def split_page(page: Image.Image, proc, n: int | None, snap: bool = True, lines: bool = False,
               crop: bool = False) -> list[Image.Image]:
    """The non-blank chunks of one page, top to bottom, at the model's page scale (``n=None``: as many
    as :func:`auto_chunks` says, or with ``lines`` one a printed line, :func:`line_borders`); ``crop``: each cut to its inked
    columns (:func:`ink_columns`)."""
    scaled = proc.page_scale(page)
    gray = np.asarray(scaled.convert("L"), dtype=np.float32)
    mask = ink_mask(gray)
    if DESKEW and lines and snap:
        angle = skew_angle(mask)
        if angle:
            paper = int(np.percentile(gray, 90))
            scaled = scaled.convert("L").rotate(angle, resample=Image.BILINEAR, fillcolor=paper)
            gray = np.asarray(scaled, dtype=np.float32)
            mask = ink_mask(gray)
    prof = mask.sum(axis=1)
    if lines and snap and n is None and LINE_SEGMENTATION in ("gaps", "valleys"):
        b = line_borders(prof, proc.cfg.line_pitch, gray.shape[1])
    else:
        if n is None:
            n = line_chunks(gray.shape[0], proc) if lines else auto_chunks(gray.shape[0], proc)
        b = chunk_borders(gray, n, snap, prof)
    out = []
    for top, bot in zip(b[:-1], b[1:]):
        if bot <= top:
            continue
        span = trim(gray, top, bot, prof, proc.cfg.line_pitch if lines else None) if snap else (top, bot)
        if span is not None:
            pitch = proc.cfg.line_pitch
            left, right = (ink_columns(mask[span[0]:span[1]], CROP_LEFT_PITCHES * pitch, CROP_RIGHT_PITCHES * pitch)
                           if crop else (0, scaled.width))
            out.append(scaled.crop((left, span[0], right, span[1])))
    return out


def ink_columns(band_ink: np.ndarray, left: int, right: int) -> tuple[int, int]:
    """A band's inked columns (``band_ink``: its rows of the page's :func:`ink_mask`) with ``left`` and
    ``right`` px of paper beside them (the whole band if blank): a short line on a wide page is encoded
    at about its own width, not the page's."""
    cols = np.flatnonzero(band_ink.any(0))
    if cols.size == 0:
        return 0, band_ink.shape[1]
    return max(0, int(cols[0]) - left), min(band_ink.shape[1], int(cols[-1]) + 1 + right)


DECODERS = ("attention", "joint")


def channels_last_convolutions(model) -> None:
    """Keep the encoder's convolution weights channels-last (NHWC): oneDNN then runs the conv stem about
    1.6x faster on this CPU (0.42 -> 0.26 s a batch of 32 line chunks, one thread) with bit-identical
    output (tests/vision/ocr/test_ocr_joint_decoding.py). Idempotent; ``save_pretrained`` still writes
    such a model."""
    import torch

    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "stem"):
        encoder.stem.to(memory_format=torch.channels_last)


def check_reading(pitch_scaled: bool, lines: bool, decoder: str, ctc_weight: float, crop: bool, beam: int = 1) -> None:
    """Refuse reading settings that do not go together (ValueError); the one check behind ``ocr read``,
    ``read_pages`` and ``ocr export``."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc weight must be within [0, 1], got {ctc_weight}")
    if lines and not pitch_scaled:
        raise ValueError("reading line by line needs a model that scales pages by line pitch (issue-25 models)")
    if crop and not pitch_scaled:
        raise ValueError("cropping chunks to their ink needs a model that scales pages by line pitch (issue-25 models)")
    if decoder == "joint" and not lines:
        raise ValueError("joint CTC/attention decoding reads one line a chunk: use it with lines=True (--lines)")
    if beam < 1 or (beam > 1 and decoder != "joint"):
        raise ValueError(f"--beam needs joint decoding (--lines --decoder joint); 1 is greedy, got {beam}")


def reading_settings(proc, lines: bool | None, decoder: str | None, ctc_weight: float | None,
                     crop: bool | None = None, beam: int = 1) -> tuple[bool, str, float, bool]:
    """The caller's reading settings, else the model's exported ones, else plain chunks + attention;
    checked by :func:`check_reading`."""
    stored = getattr(proc.cfg, "reading", None) or {}
    lines = stored.get("lines", False) if lines is None else lines
    crop = stored.get("crop", False) if crop is None else crop
    decoder = decoder or stored.get("decoder", "attention")
    ctc_weight = stored.get("ctc_weight", 0.5) if ctc_weight is None else ctc_weight
    check_reading(proc.cfg is not None and proc.cfg.scale == "height", lines, decoder, ctc_weight, crop, beam)
    return lines, decoder, ctc_weight, crop


PRECISIONS = ("auto", "fp32", "bf16")


def encoder_dtype(precision: str, device):
    """The dtype the encoder runs in for joint decoding: ``bf16`` (autocast) where the hardware has it
    natively (oneDNN's bf16 on AVX512-BF16/AMX CPUs, CUDA cards with bf16) for ``auto``. On validation
    pages the bf16 encoder read at word F1 75.98 vs 76.07 (training fonts) and 70.16 vs 69.81 (Lato),
    CER equal to 0.1 point, 1.3x the pages/s on this CPU; the decoder and the CTC scores stay fp32.
    ``fp32``: bit-for-bit the plain reading on any machine."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        native = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                  else device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else torch.float32


DECODE_BATCH, DECODE_BLOCK = 256, 1024  # joint decoding: lines decoded together; lines encoded before decoding


def _read_joint(model, proc, items, batches, ctc_weight: float, max_new: int, progress: bool,
                beam: int = 1, dtype=None) -> dict[int, list[int]]:
    """Joint decoding in two passes over blocks of chunks: encode each batch of one padded size (the
    encoder has no padding mask), then decode up to ``DECODE_BATCH`` lines of any sizes together, their
    encoder states and CTC frames padded and masked (:func:`.joint.pad_encoded`), so the decoder's
    per-step cost is shared by many lines while each line reads as it would alone. ``dtype``: the
    encoder's (:func:`encoder_dtype`)."""
    import torch
    from tqdm import tqdm

    from .joint import encode_lines, joint_beam, joint_greedy

    ids_of: dict[int, list[int]] = {}
    block: dict[int, tuple] = {}

    def decode_block():
        order = sorted(block, key=lambda j: block[j][1].shape[0])
        for k in range(0, len(order), DECODE_BATCH):
            js = order[k:k + DECODE_BATCH]
            lines = [block[j] for j in js]
            rows = (joint_beam(model, None, proc.tokenizer, ctc_weight, beam, max_new, encoded=lines) if beam > 1
                    else joint_greedy(model, None, proc.tokenizer, ctc_weight, max_new, encoded=lines))
            ids_of.update(zip(js, rows))
        block.clear()

    for key, batch in tqdm(batches, disable=not progress, desc="read", unit="batch"):
        x = proc.pixel_values([items[j][1] for j in batch], size=key).to(model.device)
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype not in (None, torch.float32)):
            encoded = encode_lines(model, x)
        block.update(zip(batch, ((e.float(), c.float()) for e, c in encoded)))
        if len(block) >= DECODE_BLOCK:
            decode_block()
    decode_block()
    return ids_of


def read_pages(paths, model=None, proc=None, chunks: int | None = DEFAULT_CHUNKS, batch_size: int = 32,
               snap: bool = True, progress: bool = False, clip: bool = True, lines: bool | None = None,
               decoder: str | None = None, ctc_weight: float | None = None,
               crop: bool | None = None, beam: int = 1, precision: str = "auto") -> tuple[list[PageResult], dict]:
    """Read pages; returns one :class:`PageResult` per path (text or error) and timing stats. A path may be
    an image, a PDF or a multi-page TIFF (:mod:`.documents`); ``pages_per_s`` counts the pages read.
    ``lines``/``decoder``/``ctc_weight``/``crop``: see the module docstring (None: the model's defaults);
    ``beam`` > 1: joint decoding keeps that many prefixes a line (:func:`.joint.joint_beam`; on validation
    pages beam 4 read 72.8 word F1 vs greedy's 71.3, at a seventh of the speed); ``precision``: the
    encoder's in joint decoding (:func:`encoder_dtype`; attention decoding is fp32)."""
    import torch
    from tqdm import tqdm

    from .model import default_model_dir, load

    if model is None:
        model, proc = load(default_model_dir())
    if chunks is not None and chunks < 1:
        raise ValueError(f"--chunks must be at least 1, got {chunks}")
    lines, decoder, ctc_weight, crop = reading_settings(proc, lines, decoder, ctc_weight, crop, beam)
    dtype = encoder_dtype(precision, model.device)
    channels_last_convolutions(model)
    if decoder == "joint" and getattr(model.encoder, "ctc_head", None) is None:
        raise ValueError("joint CTC/attention decoding needs a model with a CTC head (seqverse convvit encoder)")
    if lines:
        chunks = None
    elif chunks is None and (proc.cfg is None or proc.cfg.scale != "height"):
        chunks = DEFAULT_CHUNKS
    from .documents import PAGE_BREAK, open_pages

    t0 = time.perf_counter()
    results, items = [], []  # items: ((file index, page index), chunk image)
    for p in paths:
        r = PageResult(str(p))
        try:
            pages = open_pages(p)
            for k, page in enumerate(pages):
                for c in split_page(page, proc, chunks, snap, lines, crop):
                    items.append(((len(results), k), c))
            r.pages = len(pages)
        except PageError as err:
            r.error = str(err)
        results.append(r)
    texts: list[str] = [""] * len(items)
    # chunks of one padded size decoded together: the encoder attends over the padding, so a batch
    # padded to its largest chunk would read a short line differently (and slower) than alone
    sized = proc.cfg is not None and proc.cfg.scale == "height"
    size = (lambda c: proc.padded_size(c)) if sized else (lambda c: None)
    groups: dict = {}
    for j in sorted(range(len(items)), key=lambda j: (items[j][1].height, items[j][1].width)):
        groups.setdefault(size(items[j][1]), []).append(j)
    batches = [(key, js[k:k + batch_size]) for key, js in groups.items() for k in range(0, len(js), batch_size)]
    max_new = proc.cfg.max_length if proc.cfg else 256
    ids_of: dict[int, list[int]] = {}
    with torch.no_grad():
        if decoder == "joint":
            ids_of = _read_joint(model, proc, items, batches, ctc_weight, max_new, progress, beam, dtype)
        else:
            for key, batch in tqdm(batches, disable=not progress, desc="read", unit="batch"):
                x = proc.pixel_values([items[j][1] for j in batch], size=key).to(model.device)
                ids = model.generate(pixel_values=x, max_new_tokens=max_new, num_beams=1, do_sample=False)
                ids_of.update(zip(batch, ids.tolist()))
    for j, text in zip(ids_of, proc.decode(list(ids_of.values()))):
        c = items[j][1]
        if clip and proc.cfg:
            pitch = proc.cfg.line_pitch if proc.cfg.scale == "height" else MIN_LINE_PX
            text = clip_chunk_text(text, c.height, c.width, pitch)
        texts[j] = text
    per_page: dict[tuple[int, int], list[str]] = {}
    for (key, _), text in zip(items, texts):  # items are in page order, chunks top to bottom
        per_page.setdefault(key, []).append(text)
    for i, r in enumerate(results):
        if r.error is None:
            r.chunks = sum(len(per_page.get((i, k), [])) for k in range(r.pages))
            r.text = PAGE_BREAK.join(join_chunks(per_page.get((i, k), [])) for k in range(r.pages))
    dt = time.perf_counter() - t0
    ok = sum(r.error is None for r in results)
    pages_read = sum(r.pages for r in results if r.error is None)  # a PDF counts its pages
    return results, {"pages": len(results), "read": ok, "failed": len(results) - ok, "seconds": dt,
                     "pages_read": pages_read, "pages_per_s": pages_read / dt if dt > 0 else 0.0,
                     "chunks": "lines" if lines else chunks,
                     "decoder": decoder, "crop": crop,
                     **({"ctc_weight": ctc_weight, "beam": beam, "encoder_dtype": str(dtype).removeprefix("torch.")}
                        if decoder == "joint" else {})}
