"""FASTA in, token ids out: reading genomes, the held-out split, and random training windows.

FASTA parsing is the genomics package's one reader (:func:`seqverse.genomics.io.read_fasta`,
Biopython underneath; ``.gz``/``.xz``/``.bz2`` opened transparently). Every record is checked once
here, at the boundary: an empty file, an empty record or a non-nucleotide character is an
:class:`~seqverse.core.clikit.InputError` naming the file and record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError
from seqverse.genomics.hyenadna.tokenizer import BOS, CharacterTokenizer, reverse_complement_ids
from seqverse.genomics.io import read_fasta


def read_records(path: str | Path) -> list[tuple[str, str]]:
    """``[(id, SEQUENCE)]`` of a FASTA file (:func:`seqverse.genomics.io.read_fasta`), each record
    also checked to hold only nucleotides the tokenizer knows."""
    tok = CharacterTokenizer()
    records = list(read_fasta(path).items())
    for name, seq in records:
        tok.encode(seq, record=f"{path}: record {name!r}")  # raises naming the record and position
    return records


@dataclass
class Genome:
    """Token ids of the selected records (each a 1-D int64 array), with their names."""

    names: list[str]
    ids: list[np.ndarray]

    @property
    def length(self) -> int:
        return sum(len(x) for x in self.ids)


def parse_fraction(spec: str) -> tuple[float, float]:
    """``"0:0.8"`` -> ``(0.0, 0.8)``: the part of each record to use, as fractions of its length."""
    try:
        lo, hi = (float(x) for x in spec.split(":"))
    except ValueError as err:
        raise InputError(f"fraction {spec!r}: expected START:END, e.g. 0:0.8") from err
    if not 0 <= lo < hi <= 1:
        raise InputError(f"fraction {spec!r}: need 0 <= START < END <= 1")
    return lo, hi


def load_genome(paths, records: list[str] | None = None, fraction: tuple[float, float] = (0.0, 1.0), largest_only: bool = False) -> Genome:
    """Tokenized records of FASTA ``paths``; ``records`` picks ids, ``largest_only`` keeps each file's
    longest record (the chromosome of a bacterial assembly), and ``fraction`` the part of each record
    (``(0, 0.8)`` is the training part of the HyenaDNA split, ``(0.8, 1)`` the held-out part)."""
    tok = CharacterTokenizer()
    names, ids = [], []
    wanted = set(records or [])
    for path in paths:
        recs = read_records(path)
        if largest_only:
            recs = [max(recs, key=lambda r: len(r[1]))]
        for name, seq in recs:
            if wanted and name not in wanted:
                continue
            lo, hi = int(len(seq) * fraction[0]), int(len(seq) * fraction[1])
            names.append(name)
            ids.append(tok.encode(seq[lo:hi], record=f"{path}: record {name!r}"))
    if wanted - set(names):
        raise InputError(f"records not found in {', '.join(map(str, paths))}: {sorted(wanted - set(names))}")
    if not ids:
        raise InputError(f"no sequence selected from {', '.join(map(str, paths))}")
    return Genome(names, ids)


def sample_batch(genome: Genome, batch_size: int, seq_len: int, rng: np.random.Generator, reverse_complement: bool = True):
    """Random windows for next-nucleotide training: ``inputs = [BOS] + w[:-1]``, ``labels = w``.

    Windows are drawn uniformly over positions (records weighted by length), from either strand
    when ``reverse_complement`` (the genome is double-stranded; both strands are training data).
    """
    import torch

    lengths = np.array([max(len(x) - seq_len + 1, 0) for x in genome.ids], dtype=np.float64)
    if lengths.sum() == 0:
        raise InputError(f"every record is shorter than the training length {seq_len}")
    which = rng.choice(len(genome.ids), size=batch_size, p=lengths / lengths.sum())
    labels = np.empty((batch_size, seq_len), dtype=np.int64)
    for b, r in enumerate(which):
        start = int(rng.integers(0, lengths[r]))
        w = genome.ids[r][start : start + seq_len]
        labels[b] = reverse_complement_ids(w) if reverse_complement and rng.random() < 0.5 else w
    inputs = np.concatenate([np.full((batch_size, 1), BOS), labels[:, :-1]], axis=1)
    return torch.from_numpy(inputs), torch.from_numpy(labels)
