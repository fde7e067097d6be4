"""Regression guard on pages from another renderer (issue 25): four receipts rendered by npm receiptline
4.0.4 (Courier Prime, rasterised by rsvg-convert; benchmarks/vision/ocr_testsets.py, pages 53, 58, 80
and 86 of the receiptline set, not among the 50 the benchmark reports) with their truth.

The embedded model must not read the two smallest of them worse than it did when the bound was set
(two, to keep the test at a few seconds); the bound is the embedded model's measured CER / word F1 on
those pages plus a margin (see the constants)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from seqverse.vision.ocr.evaluate import evaluate_texts

PAGES = sorted((Path(__file__).resolve().parents[2] / "data" / "vision" / "ocr" / "receiptline").glob("*.png"))
# The embedded model (v13, pitch-scaled, joint CTC/attention reading with CTC weight 0.5, one cropped chunk a
# line, the page layout of 2026-12-07) reads pages 86 and 53 at CER 0.0117 / word F1 0.957 (all four: 0.0121 /
# 0.962; rules dropped from both sides; `python benchmarks/vision/ocr_probes.py foreign MODEL_DIR`). v11 read
# them at 0.0151 / 0.943, v9 at 0.0084 / 0.976 (the bound below was set from it and is kept), v8 at 0.057 /
# 0.865, v5 at 0.095 / 0.741; v1, embedded before issue 25, at 0.485 / 0.156. The bound leaves 0.05 of room
# over v9; tighten it whenever a better default is embedded.
FOREIGN_CER_BOUND = 0.058
FOREIGN_F1_FLOOR = 0.926


def truths():
    return [p.with_suffix(".txt").read_text() for p in PAGES]


def test_fixtures_are_present_and_small():
    assert len(PAGES) == 4
    assert sum(p.stat().st_size for p in PAGES) < 150_000


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_the_truth_is_what_is_printed():
    """Tesseract (psm 4) reads the fixtures almost exactly, so a high CER of ours is ours, not the truth's."""
    texts = [subprocess.run(["tesseract", str(p), "stdout", "--psm", "4"], capture_output=True, text=True,
                            env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"}, check=True).stdout for p in PAGES]
    assert evaluate_texts(texts, truths())["cer"] < 0.03


@pytest.mark.slow
def test_embedded_model_does_not_regress_on_foreign_pages():
    from seqverse.vision.ocr.model import default_model_dir, load
    from seqverse.vision.ocr.read import read_pages

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, proc = load(default_model_dir())
        pages = sorted(PAGES, key=lambda p: p.stat().st_size)[:2]
        results, _ = read_pages(pages, model, proc, chunks=getattr(proc.cfg, "default_chunks", None))
    finally:
        torch.set_num_threads(n)
    m = evaluate_texts([r.text or "" for r in results], [p.with_suffix(".txt").read_text() for p in pages])
    assert m["cer"] <= FOREIGN_CER_BOUND, m
    assert m["word_f1"] >= FOREIGN_F1_FLOOR, m
