"""Baselines HyenaDNA is measured against: order-k Markov chains (bits per base) and k-mer count
logistic regression (sequence classification).

The Markov model predicts base t from the k bases before it with add-alpha smoothed counts,
counted on both strands of the training sequence; the first bases of a sequence, which have
fewer than k predecessors, use the longest available order. ``MarkovModel.logprobs_ref`` is the
plain loop the vectorised ``logprobs`` is tested against.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from seqverse.genomics.hyenadna.tokenizer import A, reverse_complement_ids
from seqverse.genomics.io import reverse_complement


def _acgt(ids: np.ndarray) -> np.ndarray:
    """Token ids -> 0..3 for A C G T, -1 for N."""
    x = ids.astype(np.int64) - A
    return np.where((x >= 0) & (x < 4), x, -1)


def _codes(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 code of each (k+1)-mer ending at position t (t >= k), and whether it has no N."""
    n = len(x)
    if n <= k:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    code = np.zeros(n - k, dtype=np.int64)
    ok = np.ones(n - k, dtype=bool)
    for j in range(k + 1):  # most significant = oldest base
        part = x[j : n - k + j]
        ok &= part >= 0
        code = code * 4 + np.maximum(part, 0)
    return code, ok


class MarkovModel:
    """Order-``k`` Markov chain over A C G T with add-``alpha`` smoothing (all orders 0..k kept)."""

    def __init__(self, k: int, alpha: float = 0.5):
        if not 0 <= k <= 12:
            raise ValueError(f"Markov order must be in 0..12, got {k}")
        self.k, self.alpha = k, alpha
        self.counts: list[np.ndarray] = []

    def fit(self, sequences: list[np.ndarray], both_strands: bool = True) -> MarkovModel:
        """Count (k+1)-mers (N-free) on the sequences and, with ``both_strands``, their reverse
        complements; lower orders (for the first bases) are the order-k table summed over the oldest base."""
        seqs = [_acgt(s) for s in sequences]
        if both_strands:
            seqs += [_acgt(reverse_complement_ids(s)) for s in sequences]
        c = np.zeros(4 ** (self.k + 1), dtype=np.float64)
        for x in seqs:
            code, ok = _codes(x, self.k)
            c += np.bincount(code[ok], minlength=c.size)
        self.counts = [c.reshape(-1, 4)]
        for _ in range(self.k):
            self.counts.insert(0, self.counts[0].reshape(4, -1, 4).sum(0))
        return self

    def logprobs(self, ids: np.ndarray) -> np.ndarray:
        """Natural-log probability of each base: order ``k`` wherever the ``k`` bases before it are
        N-free, else the longest N-free order available (the first bases); N itself gets log 1/4."""
        x = _acgt(ids)
        out = np.full(len(x), np.nan)
        table = self.counts[self.k]
        probs = (table + self.alpha) / (table.sum(1, keepdims=True) + 4 * self.alpha)
        code, ok = _codes(x, self.k)
        t = np.arange(self.k, len(x))[ok]
        out[t] = np.log(probs[code[ok] // 4, code[ok] % 4])
        out[x < 0] = math.log(0.25)
        for t in np.flatnonzero(np.isnan(out)):  # the first k bases, and bases just after an N
            out[t] = self._logprob_backoff(x, t)
        return out

    def _logprob_backoff(self, x: np.ndarray, t: int) -> float:
        order = 0
        while order < min(self.k, t) and x[t - order - 1] >= 0:
            order += 1
        ctx = 0
        for j in range(t - order, t):
            ctx = ctx * 4 + x[j]
        table = self.counts[order]
        return math.log((table[ctx, x[t]] + self.alpha) / (table[ctx].sum() + 4 * self.alpha))

    def logprobs_ref(self, ids: np.ndarray) -> np.ndarray:
        """Reference: each base with the longest N-free context up to ``k`` (plain loop)."""
        x = _acgt(ids)
        return np.array([self._logprob_backoff(x, t) if x[t] >= 0 else math.log(0.25) for t in range(len(x))])

    def bits_per_base(self, sequences: list[np.ndarray]) -> float:
        total = sum(self.logprobs(s).sum() for s in sequences)
        return -total / sum(len(s) for s in sequences) / math.log(2)


def select_markov(train: list[np.ndarray], val: list[np.ndarray], orders=range(0, 13), alphas=(0.01, 0.1, 0.5, 1.0)) -> tuple[MarkovModel, list[dict]]:
    """Pick the order and smoothing with the lowest bits/base on ``val``; returns the model (fit on
    ``train``) and the whole validation table."""
    rows, best = [], None
    for k in orders:
        model = MarkovModel(k).fit(train)
        for alpha in alphas:
            model.alpha = alpha
            bpb = model.bits_per_base(val)
            rows.append({"order": k, "alpha": alpha, "val_bits_per_base": bpb})
            if best is None or bpb < best[0]:
                best = (bpb, k, alpha)
    _, k, alpha = best
    return MarkovModel(k, alpha).fit(train), rows


class KmerCounts(TransformerMixin, BaseEstimator):
    """Counts of every k-mer of each sequence; with ``both_strands`` the counts of the sequence plus
    those of its reverse complement (a strand-independent profile)."""

    def __init__(self, k: int = 6, both_strands: bool = False):
        self.k, self.both_strands = k, both_strands

    def fit(self, X, y=None):
        from sklearn.feature_extraction.text import CountVectorizer

        texts = list(X) + [reverse_complement(s) for s in X] if self.both_strands else list(X)
        self.vectorizer_ = CountVectorizer(analyzer="char", ngram_range=(self.k, self.k), lowercase=False).fit(texts)
        return self

    def transform(self, X):
        counts = self.vectorizer_.transform(X)
        return counts + self.vectorizer_.transform([reverse_complement(s) for s in X]) if self.both_strands else counts


def kmer_logistic_regression(train_seqs: list[str], train_labels, ks=(3, 4, 5, 6), cv: int = 3, seed: int = 0,
                             val_mask=None, strands=(False,), Cs=(0.01, 0.1, 1.0)):
    """k-mer count features + logistic regression; ``k``, the regularisation ``C`` and (with
    ``strands=(False, True)``) whether k-mers are counted on both strands are chosen on the training
    set: by ``cv``-fold cross-validation, or, with ``val_mask`` (True for the records of a validation
    split carved from the training set, e.g. by locus), on that split; the chosen setting is then
    refit on all training records. Returns the fitted pipeline and the chosen ``{"k", "C", "both_strands"}``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    pipe = make_pipeline(
        KmerCounts(),
        Normalizer(norm="l1"),
        StandardScaler(with_mean=False),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    grid = {"kmercounts__k": list(ks), "kmercounts__both_strands": list(strands), "logisticregression__C": list(Cs)}
    if val_mask is not None:
        cv = PredefinedSplit(np.where(np.asarray(val_mask, dtype=bool), 0, -1))
    search = GridSearchCV(pipe, grid, cv=cv, n_jobs=1)
    search.fit([s.upper() for s in train_seqs], list(train_labels))
    p = search.best_params_
    return search.best_estimator_, {"k": p["kmercounts__k"], "C": p["logisticregression__C"], "both_strands": p["kmercounts__both_strands"],
                                    "selection_accuracy": float(search.best_score_)}
