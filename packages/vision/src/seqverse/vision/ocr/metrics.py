"""Page-level OCR metrics as the paper reports them on SROIE.

CER: character edit distance between whitespace-normalised page texts divided by the ground-truth
length (summed over pages). Word precision/recall/F1: the multiset of whitespace tokens of the
prediction against that of the ground truth (SROIE task 2 style).
"""

from __future__ import annotations

from collections import Counter


def normalise(text: str) -> str:
    """Collapse every run of whitespace (line breaks included) to one space."""
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (reference implementation; :func:`cer` uses rapidfuzz's when present)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _distance(a: str, b: str) -> int:
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:  # pragma: no cover - rapidfuzz ships with jiwer
        return edit_distance(a, b)
    return Levenshtein.distance(a, b)


RULE_SYMBOLS = set("-=*_~—–")


def is_rule(line: str) -> bool:
    """A separator rule: a line made only of ``- = * _ ~`` (and spaces)."""
    ink = set(line.replace(" ", "").replace("\t", ""))
    return bool(ink) and ink <= RULE_SYMBOLS


def drop_rules(text: str) -> str:
    """Remove separator rule lines: renderers print them as text or as graphics, and OCR systems differ
    in reading them, so metrics drop them from both sides for every system."""
    return "\n".join(ln for ln in text.split("\n") if not is_rule(ln))


def cer(preds: list[str], truths: list[str]) -> float:
    """Summed edit distance over summed ground-truth length, on whitespace-normalised text."""
    errors = sum(_distance(normalise(p), normalise(t)) for p, t in zip(preds, truths, strict=True))
    return errors / max(1, sum(len(normalise(t)) for t in truths))


def word_prf(preds: list[str], truths: list[str]) -> dict:
    """Micro precision, recall and F1 of whitespace tokens (multiset match per page)."""
    hit = n_pred = n_true = 0
    for p, t in zip(preds, truths, strict=True):
        cp, ct = Counter(p.split()), Counter(t.split())
        hit += sum((cp & ct).values())
        n_pred += sum(cp.values())
        n_true += sum(ct.values())
    prec = hit / n_pred if n_pred else 0.0
    rec = hit / n_true if n_true else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1}
