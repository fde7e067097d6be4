"""Compare predicted page texts with ground truth: ``PRED_DIR/<stem>.txt`` against ``GT_DIR/<stem>.txt``."""

from __future__ import annotations

import re
from pathlib import Path

from seqverse.core.clikit import InputError

from .metrics import cer, drop_rules, word_prf

_AMOUNT = re.compile(r"\d[\d,]*\.\d\d$")


def amounts_on_item_lines(pred: str, truth: str) -> tuple[int, int]:
    """Reading-order check: ``(kept, checked)`` over amounts read exactly.

    An amount that ends a truth line after an item (and occurs once in the truth) is *checked* when a
    predicted line ends with it, and *kept* when the text before it on that predicted line matches its
    own item (fuzzy ratio >= 60), i.e. the amount was not moved to another line or item.
    """
    from rapidfuzz import fuzz

    items: dict[str, list[str]] = {}
    for line in truth.split("\n"):
        m = _AMOUNT.search(line.strip())
        if m and line.strip()[: m.start()].strip():
            items.setdefault(m.group(), []).append(line.strip()[: m.start()].strip())
    kept = checked = 0
    for line in pred.split("\n"):
        m = _AMOUNT.search(line.strip())
        if m and len(items.get(m.group(), [])) == 1:
            checked += 1
            kept += fuzz.ratio(line.strip()[: m.start()].strip(), items[m.group()][0]) >= 60
    return kept, checked


def evaluate_texts(preds: list[str], truths: list[str]) -> dict:
    """Page metrics, the same for every system: separator rules (lines made only of ``- = * _ ~``) are
    dropped from both prediction and truth before CER and word precision/recall/F1 (one renderer
    prints them as text, another as graphics, and OCR systems differ in whether they read them);
    ``cer_with_rules`` keeps them. Word F1 is the headline, CER beside it."""
    p_text, t_text = [drop_rules(p) for p in preds], [drop_rules(t) for t in truths]
    prf = word_prf(p_text, t_text)
    order = [amounts_on_item_lines(p, t) for p, t in zip(p_text, t_text)]
    kept, checked = sum(k for k, _ in order), sum(c for _, c in order)
    return {"pages": len(truths), "word_f1": prf["f1"], "cer": cer(p_text, t_text),
            "word_precision": prf["precision"], "word_recall": prf["recall"],
            "cer_with_rules": cer(preds, truths),
            "amounts_checked": checked, "amounts_on_item_line": kept / checked if checked else None}


def evaluate_dirs(pred_dir: str | Path, gt_dir: str | Path) -> dict:
    """Every ground-truth page counts; a missing prediction counts as an empty page."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d in (pred_dir, gt_dir):
        if not d.is_dir():
            raise InputError(f"{d}: not a directory")
    gts = sorted(gt_dir.glob("*.txt"))
    if not gts:
        raise InputError(f"{gt_dir}: no ground-truth .txt files")
    preds, truths, missing = [], [], 0
    for g in gts:
        p = pred_dir / g.name
        if not p.exists():
            missing += 1
        preds.append(p.read_text(errors="replace") if p.exists() else "")
        truths.append(g.read_text(errors="replace"))
    return {**evaluate_texts(preds, truths), "missing_predictions": missing}
