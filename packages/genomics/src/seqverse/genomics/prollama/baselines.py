"""Baselines ProLLaMA is judged against (issue 22): profile sampling, k-mer classifier, Markov chain.

- :func:`hmmemit_samples`: sequences ``hmmemit`` samples from a family's profile HMM -- the ceiling
  of the hmmsearch hit rate, with low novelty by construction.
- :class:`KmerLogReg`: superfamily prediction from 1-3-mer counts with logistic regression.
- :class:`MarkovLM`: an order-k residue Markov chain (add-alpha smoothing) for held-out perplexity.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from seqverse.genomics.prollama.data import AMINO_ACIDS


def hmm_block(profiles: Path, name: str) -> str:
    """One model's text from a multi-model HMM file."""
    for block in Path(profiles).read_text().split("//\n"):
        m = re.search(r"^NAME\s+(\S+)", block, re.M)
        if m and m.group(1) == name:
            return block + "//\n"
    raise KeyError(name)


def hmmemit_samples(profiles: Path, name: str, n: int, seed: int = 0) -> list[str]:
    """``n`` sequences sampled from the profile's full model (``hmmemit -N n --seed``)."""
    with tempfile.TemporaryDirectory() as tmp:
        hmm = Path(tmp) / "one.hmm"
        hmm.write_text(hmm_block(profiles, name))
        out = subprocess.run(["hmmemit", "-N", str(n), "--seed", str(seed + 1), str(hmm)], check=True,
                             capture_output=True, text=True).stdout
    seqs, cur = [], []
    for line in out.splitlines():
        if line.startswith(">"):
            if cur:
                seqs.append("".join(cur))
            cur = []
        else:
            cur.append(line.strip())
    if cur:
        seqs.append("".join(cur))
    return seqs


class KmerLogReg:
    """1-3-mer count features + multinomial logistic regression (scikit-learn)."""

    def __init__(self, k: int = 3, C: float = 1.0):
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import Normalizer

        self.pipe = make_pipeline(CountVectorizer(analyzer="char", ngram_range=(1, k), lowercase=False),
                                  Normalizer(), LogisticRegression(C=C, max_iter=2000))

    def fit(self, seqs: list[str], labels: list[str]) -> KmerLogReg:
        self.pipe.fit(seqs, labels)
        return self

    def predict(self, seqs: list[str]) -> list[str]:
        return list(self.pipe.predict(seqs))


class MarkovLM:
    """Order-k Markov chain over residues with an end symbol '$'; add-alpha smoothing."""

    def __init__(self, k: int = 2, alpha: float = 0.1):
        self.k, self.alpha = k, alpha
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.symbols = AMINO_ACIDS + "$"

    def _contexts(self, seq: str):
        padded = "^" * self.k + seq + "$"
        for i in range(self.k, len(padded)):
            yield padded[i - self.k: i], padded[i]

    def fit(self, seqs: list[str]) -> MarkovLM:
        for s in seqs:
            for ctx, sym in self._contexts("".join(c for c in s if c in AMINO_ACIDS)):
                self.counts[ctx][sym] += 1
        return self

    def nll(self, seq: str) -> tuple[float, int]:
        """(total NLL in nats, number of predicted symbols incl. the end)."""
        total, n, v = 0.0, 0, len(self.symbols)
        for ctx, sym in self._contexts(seq):
            c = self.counts.get(ctx, Counter())
            total -= math.log((c[sym] + self.alpha) / (sum(c.values()) + self.alpha * v))
            n += 1
        return total, n

    def perplexity(self, seqs: list[str]) -> float:
        tot = [self.nll(s) for s in seqs]
        return math.exp(sum(t for t, _ in tot) / sum(n for _, n in tot))
