"""Character tokenizer with the official HyenaDNA ids (``CharacterTokenizer`` of the HF port).

Special tokens ``[CLS]``=0, ``[SEP]``=1, ``[BOS]``=2, ``[MASK]``=3, ``[PAD]``=4, ``[RESERVED]``=5,
``[UNK]``=6, then one id per character: ``A C G T N`` = 7..11 (vocab 12, padded to 16 in the
model's embedding). Batches are left-padded (the official ``padding_side='left'``), so the last
column holds every sequence's last token, which the classification head reads.

Unlike the official tokenizer, which maps any unknown character to ``[UNK]`` silently, ``encode``
checks its input: lower case is upper-cased, IUPAC ambiguity codes (R, Y, ...) become ``N``, and
anything else is an error naming the record and the position.
"""

from __future__ import annotations

import numpy as np
import torch

from seqverse.core.clikit import InputError

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
CHARACTERS = ("A", "C", "G", "T", "N")
CLS, SEP, BOS, MASK, PAD, RESERVED, UNK = range(7)
A, C, G, T, N = range(7, 12)
VOCAB = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
IUPAC_AMBIGUOUS = "RYSWKMBDHV"

_LUT = np.full(256, -1, dtype=np.int64)
for _i, _ch in enumerate(CHARACTERS):
    _LUT[ord(_ch)] = _LUT[ord(_ch.lower())] = 7 + _i
for _ch in IUPAC_AMBIGUOUS:
    _LUT[ord(_ch)] = _LUT[ord(_ch.lower())] = N
_COMPLEMENT = np.arange(16, dtype=np.int64)
_COMPLEMENT[[A, C, G, T]] = [T, G, C, A]


class CharacterTokenizer:
    """Maps DNA strings to official HyenaDNA ids and back."""

    vocab = VOCAB
    pad_token_id, sep_token_id, bos_token_id, cls_token_id, unk_token_id = PAD, SEP, BOS, CLS, UNK

    def __init__(self, model_max_length: int | None = None, padding_side: str = "left"):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.model_max_length, self.padding_side = model_max_length, padding_side

    def encode(self, seq: str, record: str = "sequence", add_special_tokens: bool = False) -> np.ndarray:
        """Ids of ``seq`` (int64 array); with ``add_special_tokens`` the official ``[SEP]`` is appended.

        Raises :class:`InputError` naming ``record`` and the first offending position for any
        character that is not a nucleotide (ACGTN or an IUPAC ambiguity code, any case).
        """
        raw = np.frombuffer(seq.encode("latin-1", errors="replace"), dtype=np.uint8)
        ids = _LUT[raw]
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{record}: invalid character {seq[i]!r} at position {i + 1} (expected A, C, G, T or N)")
        if add_special_tokens:
            ids = np.append(ids, SEP)
        return ids

    def decode(self, ids) -> str:
        """Characters of nucleotide ids; special tokens are dropped."""
        inv = {i: t for t, i in VOCAB.items()}
        return "".join(inv[int(i)] for i in ids if int(i) >= 7 and int(i) in inv)

    def batch(self, seqs: list[str], records: list[str] | None = None, max_length: int | None = None) -> torch.Tensor:
        """Encode and pad to one ``[B, L]`` tensor (left padding by default); longer ones are cut to
        their last ``max_length`` tokens."""
        records = records or [f"sequence {i + 1}" for i in range(len(seqs))]
        encoded = [self.encode(s, r) for s, r in zip(seqs, records)]
        limit = max_length or self.model_max_length
        if limit:
            encoded = [e[-limit:] for e in encoded]
        width = max(len(e) for e in encoded)
        out = np.full((len(encoded), width), PAD, dtype=np.int64)
        for i, e in enumerate(encoded):
            if self.padding_side == "left":
                out[i, width - len(e) :] = e
            else:
                out[i, : len(e)] = e
        return torch.from_numpy(out)


def reverse_complement_ids(ids: np.ndarray) -> np.ndarray:
    """Reverse complement of nucleotide ids (N and special tokens map to themselves)."""
    return _COMPLEMENT[ids[::-1]]
