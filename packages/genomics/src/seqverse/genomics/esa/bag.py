"""Inference for the k-mer-bag DNA-ESA encoder (``n_layers = 0``) in numpy, without importing torch.

With no Transformer layers the encoder is linear up to the final normalisation: the embedding of
a sequence is ``normalize(mean over its k-mers of E[kmer]) @ P^T`` = ``normalize(mean of T[kmer])``
with ``T = E P^T`` precomputed once (4,097 x d_out). The mean is a k-mer count vector times ``T``
(one ``bincount`` and one matrix product per batch). With a pooling profile (``pool_bins > 0``)
each k-mer is counted with its position's weight (a weighted ``bincount``). :class:`~seqverse.genomics.esa.model.DNAEncoder`
is the reference; a test holds the two equal. The aligner uses this class so its worker processes
start without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A, C, G, T -> 0..3; everything else (N, IUPAC codes) -> 4. Lower case is folded to upper case.
_CODE = np.full(256, 4, dtype=np.int64)
for _i, _c in enumerate(b"ACGT"):
    _CODE[_c] = _i
    _CODE[ord(chr(_c).lower())] = _i


def encode_bases(seqs: list[str]) -> np.ndarray:
    """Equal-length sequences -> ``[B, L]`` base codes (0..3 for ACGT, 4 otherwise)."""
    buf = np.frombuffer("".join(seqs).encode("ascii", "replace"), dtype=np.uint8)
    return _CODE[buf].reshape(len(seqs), -1)


def kmer_tokens(codes: np.ndarray, k: int) -> np.ndarray:
    """``[B, L]`` base codes -> ``[B, L-k+1]`` overlapping k-mer ids; a k-mer with an N gets ``4**k``."""
    b, length = codes.shape
    if length < k:
        raise ValueError(f"sequence of length {length} is shorter than k={k}")
    n = length - k + 1
    ids = np.zeros((b, n), dtype=np.int64)
    has_n = np.zeros((b, n), dtype=bool)
    for j in range(k):
        window = codes[:, j : j + n]
        ids = ids * 4 + (window & 3)
        has_n |= window == 4
    ids[has_n] = 4**k
    return ids


def profile_weights(logits: np.ndarray | None, n: int) -> np.ndarray:
    """Pooling weights of positions ``0..n-1``: ``exp`` of the knots interpolated at ``i / (n - 1)``
    (all ones without a profile). Numpy twin of ``model.profile_weights`` (a test holds them equal)."""
    if logits is None or len(logits) == 0:
        return np.ones(n)
    b = len(logits)
    if b == 1:
        return np.full(n, np.exp(float(logits[0])))
    u = np.linspace(0, b - 1, n)
    lo = np.minimum(np.floor(u).astype(np.int64), b - 2)
    frac = u - lo
    return np.exp(logits[lo] * (1 - frac) + logits[lo + 1] * frac)


@dataclass
class BagConfig:
    k: int
    d_out: int
    pool: int = 1  # no pooling: the mean runs over every k-mer


class BagEncoder:
    """``embed_sequences`` of a saved ``n_layers = 0`` DNAEncoder, in numpy."""

    def __init__(self, table: np.ndarray, k: int, pool_logits: np.ndarray | None = None):
        self.table = np.ascontiguousarray(table, dtype=np.float32)  # [4**k + 1, d_out]
        self.config = BagConfig(k=k, d_out=table.shape[1])
        self.pool_logits = None if pool_logits is None else np.asarray(pool_logits, dtype=np.float64)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> BagEncoder:
        from safetensors.numpy import load_file

        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if config.get("n_layers", 2) != 0:
            raise ValueError(f"{directory}: not a k-mer-bag encoder (n_layers {config.get('n_layers')})")
        state = load_file(str(directory / "model.safetensors"))
        table = state["embed.weight"].astype(np.float32) @ state["proj.weight"].astype(np.float32).T
        return cls(table, int(config["k"]), state["pool_logits"].astype(np.float32) if "pool_logits" in state else None)

    def embed_sequences(self, seqs: list[str], batch_size: int = 512) -> np.ndarray:
        """DNA strings (any mix of lengths >= k) -> ``[N, d_out]`` unit vectors, in input order."""
        out = np.zeros((len(seqs), self.config.d_out), dtype=np.float32)
        vocab = self.table.shape[0]
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(seqs):
            by_len.setdefault(len(s), []).append(i)
        for _, idx in sorted(by_len.items()):
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                tokens = kmer_tokens(encode_bases([seqs[i] for i in chunk]), self.config.k)
                rows = (np.arange(len(chunk))[:, None] * vocab + tokens).ravel()
                weights = None
                if self.pool_logits is not None:
                    weights = np.tile(profile_weights(self.pool_logits, tokens.shape[1]), len(chunk))
                counts = np.bincount(rows, weights=weights, minlength=len(chunk) * vocab).reshape(len(chunk), vocab)
                emb = counts.astype(np.float32) @ self.table
                out[chunk] = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return out


def default_model_dir() -> Path:
    """The embedded encoder shipped inside the package (a k-mer bag trained on ten genomes of two phyla; see its model card)."""
    return Path(__file__).parent / "assets" / "encoder"


def load_inference_encoder(directory: str | Path):
    """The numpy BagEncoder for a k-mer-bag model directory, else the torch DNAEncoder."""
    config = json.loads((Path(directory) / "config.json").read_text())
    if config.get("n_layers", 2) == 0:
        return BagEncoder.from_pretrained(directory)
    from seqverse.genomics.esa.model import DNAEncoder

    return DNAEncoder.from_pretrained(directory)
