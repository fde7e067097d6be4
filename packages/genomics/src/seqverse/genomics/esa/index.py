"""The DNA-ESA vector store (Holur et al. 2023, Sec. 3.3): reference fragments embedded into FAISS.

The reference is cut into overlapping fragments of ``fragment_len`` every ``stride`` bases; with
``stride <= fragment_len - read_len + 1`` every read of up to ``read_len`` bases lies wholly inside
at least one fragment (the default 400/150 covers reads up to 251 bp; a 250 bp read then fills at least 62% of
some fragment, which makes its embedding closer to that fragment's than with 500/250). Fragment embeddings go into
an exact inner-product index (``IndexFlatIP``) for small references and an HNSW graph above
``hnsw_threshold`` fragments. An index directory holds the FAISS index, fragment metadata (contig,
offset), the reference sequence (for the alignment step) and a copy of the encoder, so it reloads
exactly as built.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError
from seqverse.genomics.esa.model import DNAEncoder, default_model_dir
from seqverse.genomics.io import atomic_output, read_fasta

HNSW_THRESHOLD = 1_000_000  # fragments; above this an exact scan costs more than the alignment


def fragment_starts(length: int, fragment_len: int, stride: int) -> list[int]:
    """Start offsets of the fragments of a contig; the last one ends at the contig's end."""
    if length <= fragment_len:
        return [0]
    starts = list(range(0, length - fragment_len + 1, stride))
    if starts[-1] + fragment_len < length:
        starts.append(length - fragment_len)
    return starts


@dataclass
class ESAIndex:
    """A loaded index: FAISS store, per-fragment (contig id, start, length), contigs, encoder."""

    faiss_index: object
    frag_contig: np.ndarray
    frag_start: np.ndarray
    frag_len: np.ndarray
    contigs: dict[str, str]
    encoder: DNAEncoder
    meta: dict

    @property
    def contig_names(self) -> list[str]:
        return list(self.contigs)

    def windows(self, pad: int) -> tuple[list[int], list[int], list[int]]:
        """Per fragment: contig id and the padded window ``[start - pad, end + pad)`` clipped to the contig (cached lists)."""
        cache = self.__dict__.setdefault("_windows", {})
        if pad not in cache:
            lengths = np.array([len(s) for s in self.contigs.values()])[self.frag_contig]
            lo = np.maximum(0, self.frag_start - pad)
            hi = np.minimum(lengths, self.frag_start + self.frag_len + pad)
            cache[pad] = (self.frag_contig.tolist(), lo.tolist(), hi.tolist())
        return cache[pad]

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.faiss_index.search(np.ascontiguousarray(embeddings, dtype=np.float32), k)


def build_index(
    reference: str | Path,
    out_dir: str | Path,
    model_dir: str | Path | None = None,
    fragment_len: int = 400,
    stride: int = 150,
    index_type: str = "auto",
    threads: int = 2,
    batch_size: int = 256,
    progress: bool = True,
) -> dict:
    """Embed every fragment of ``reference`` and write the index directory; returns build statistics."""
    import faiss
    import torch
    from tqdm import tqdm

    if stride <= 0 or fragment_len <= 0 or stride > fragment_len:
        raise InputError(f"need 0 < stride <= fragment_len, got stride={stride}, fragment_len={fragment_len}")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    t0 = time.time()
    contigs = read_fasta(reference)
    model_dir = Path(model_dir) if model_dir else default_model_dir()
    encoder = DNAEncoder.from_pretrained(model_dir)
    if fragment_len < 2 * encoder.config.k:
        raise InputError(f"fragment_len {fragment_len} is too short for k={encoder.config.k}")
    fc, fs, fl, seqs = [], [], [], []
    for ci, (name, seq) in enumerate(contigs.items()):
        if len(seq) < encoder.config.k:
            raise InputError(f"{reference}: record {name}: sequence of {len(seq)} bases is shorter than k={encoder.config.k}")
        for s in fragment_starts(len(seq), fragment_len, stride):
            frag = seq[s : s + fragment_len]
            fc.append(ci), fs.append(s), fl.append(len(frag)), seqs.append(frag)
    emb = np.zeros((len(seqs), encoder.config.d_out), dtype=np.float32)
    bar = tqdm(total=len(seqs), disable=not progress, desc="esa index", unit="frag")
    for i in range(0, len(seqs), 8192):
        emb[i : i + 8192] = encoder.embed_sequences(seqs[i : i + 8192], batch_size=batch_size)
        bar.update(len(seqs[i : i + 8192]))
    bar.close()
    t_embed = time.time() - t0
    if index_type == "auto":
        index_type = "hnsw" if len(seqs) > HNSW_THRESHOLD else "flat"
    d = emb.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(d)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        raise InputError(f"unknown index type {index_type!r}; choose auto, flat or hnsw")
    index.add(emb)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "fragments.faiss.tmp"))
    (out / "fragments.faiss.tmp").replace(out / "fragments.faiss")
    np.savez(out / "fragments.npz", contig=np.array(fc, np.int32), start=np.array(fs, np.int64), length=np.array(fl, np.int32))
    with atomic_output(out / "reference.fa") as handle:
        for name, seq in contigs.items():
            handle.write(f">{name}\n")
            for j in range(0, len(seq), 80):
                handle.write(seq[j : j + 80] + "\n")
    shutil.copytree(model_dir, out / "encoder", dirs_exist_ok=True)
    seconds = time.time() - t0
    meta = {
        "reference": str(reference),
        "contigs": {n: len(s) for n, s in contigs.items()},
        "fragments": len(seqs),
        "fragment_len": fragment_len,
        "stride": stride,
        "index_type": index_type,
        "dim": d,
        "embed_seconds": round(t_embed, 2),
        "seconds": round(seconds, 2),
        "bytes": 0,
    }
    meta["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    with atomic_output(out / "meta.json") as handle:
        handle.write(json.dumps(meta, indent=2) + "\n")
    return meta


def load_index(directory: str | Path) -> ESAIndex:
    """Reload an index directory written by :func:`build_index`."""
    import faiss

    directory = Path(directory)
    if not (directory / "meta.json").is_file():
        raise InputError(f"{directory}: not a DNA-ESA index (no meta.json); build one with `esa index`")
    meta = json.loads((directory / "meta.json").read_text())
    frags = np.load(directory / "fragments.npz")
    return ESAIndex(
        faiss_index=faiss.read_index(str(directory / "fragments.faiss")),
        frag_contig=frags["contig"],
        frag_start=frags["start"],
        frag_len=frags["length"],
        contigs=read_fasta(directory / "reference.fa"),
        encoder=DNAEncoder.from_pretrained(directory / "encoder"),
        meta=meta,
    )
