"""Two OCR probes that read a model's text on fixed pages (not selections, not test sets):

    python benchmarks/vision/ocr_probes.py foreign MODEL_DIR      # the foreign-page regression fixtures
    python benchmarks/vision/ocr_probes.py dots MODEL_DIR         # leader-dot rows on the validation pages

``foreign``: the receiptline fixtures of tests/vision/ocr/test_ocr_foreign_pages.py, read as that test reads
them (one thread, the model's reading defaults): the two smallest pages (what the test bounds) and all four.
``dots``: the first ``--pages`` training-font validation pages (benchmarks/vision/ocr_select_reading.py), read
with the model's defaults; CER (rules dropped, as the
metrics do) with every line, and with lines made only of dots removed from both sides, so
the share of the CER that leader-dot rows cause shows. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocr_select_reading import ROOT, validation_pages  # noqa: E402

FIXTURES = ROOT / "tests" / "data" / "vision" / "ocr" / "receiptline"


def without_dot_lines(text: str) -> str:
    """``text`` less its lines made only of dots (and spaces)."""
    return "\n".join(ln for ln in text.splitlines() if not (ln.strip() and set(ln.strip()) <= {".", " "}))


def read(model_dir: str, pages: list[Path]) -> list[str]:
    import torch

    from seqverse.vision.ocr.model import load
    from seqverse.vision.ocr.read import read_pages

    torch.set_num_threads(1)
    model, proc = load(model_dir)
    results, _ = read_pages(pages, model, proc, chunks=getattr(proc.cfg, "default_chunks", None))
    return [r.text or "" for r in results]


def foreign(model_dir: str) -> dict:
    from seqverse.vision.ocr.evaluate import evaluate_texts

    pages = sorted(FIXTURES.glob("*.png"), key=lambda p: p.stat().st_size)
    texts = read(model_dir, pages)
    truths = [p.with_suffix(".txt").read_text() for p in pages]
    out = {}
    for name, k in (("two_smallest", 2), ("all_four", 4)):
        m = evaluate_texts(texts[:k], truths[:k])
        out[name] = {"pages": [p.stem for p in pages[:k]], "cer": round(m["cer"], 4), "word_f1": round(m["word_f1"], 4)}
    return out


def dots(model_dir: str, n: int) -> dict:
    from seqverse.vision.ocr.metrics import cer, drop_rules

    pages = validation_pages(ROOT / "runs" / "ocr" / "validation", n)
    texts = [drop_rules(t) for t in read(model_dir, pages)]  # rules dropped, as evaluate_texts does
    truths = [drop_rules(p.with_suffix(".txt").read_text()) for p in pages]
    dot_rows = sum(len(t.splitlines()) - len(without_dot_lines(t).splitlines()) for t in truths)
    return {"pages": n, "dot_rows_in_truth": dot_rows, "cer": round(cer(texts, truths), 4),
            "cer_without_dot_lines": round(cer([without_dot_lines(t) for t in texts],
                                               [without_dot_lines(t) for t in truths]), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=("foreign", "dots"))
    ap.add_argument("model", help="model directory (a run's last/ or an export)")
    ap.add_argument("--pages", type=int, default=20, help="dots: validation pages (default 20)")
    args = ap.parse_args(argv)
    res = foreign(args.model) if args.probe == "foreign" else dots(args.model, args.pages)
    print(json.dumps({"model": args.model, args.probe: res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
