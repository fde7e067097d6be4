"""Compare predicted page texts with ground truth: ``PRED_DIR/<stem>.txt`` against ``GT_DIR/<stem>.txt``."""

from __future__ import annotations

from pathlib import Path

from seqverse.core.clikit import InputError

from .metrics import cer, drop_rules, word_prf


def evaluate_texts(preds: list[str], truths: list[str]) -> dict:
    prf = word_prf(preds, truths)
    return {"pages": len(truths), "cer": cer(preds, truths), "word_precision": prf["precision"],
            "word_recall": prf["recall"], "word_f1": prf["f1"],
            "cer_without_rules": cer([drop_rules(p) for p in preds], [drop_rules(t) for t in truths])}


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
