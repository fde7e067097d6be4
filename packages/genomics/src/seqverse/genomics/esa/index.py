"""The DNA-ESA vector store (Holur et al. 2023, Sec. 3.3): reference fragments embedded into FAISS.

The reference is cut into overlapping fragments of ``fragment_len`` every ``stride`` bases; with
``stride <= fragment_len - read_len + 1`` every read of up to ``read_len`` bases lies wholly inside
at least one fragment (the default 400/150 covers reads up to 251 bp). **Both strands of every
fragment are stored** (vector ``2 f`` is fragment ``f``, ``2 f + 1`` its reverse complement), so a
read is embedded once, as given, and a hit on an odd vector places it on the reverse strand.

The build streams: FASTA records are read one at a time, their bases appended to
``reference.seq`` (one byte per base, memory-mapped by the aligner, so the reference is never a
Python string in memory), and fragments are embedded and added to FAISS in chunks. Peak memory is
the FAISS store plus one chunk. Store types (``--index-type``):

- ``flat``: exact inner product (``IndexFlatIP``), 4 bytes x dim per vector;
- ``hnsw``: an HNSW graph (M 32, efConstruction 80) over exact vectors, searched with efSearch 32
  and, for reads that align poorly from that, again with efSearch 256 (the aligner's cascade);
- ``hnsw-sq8``: the same graph over vectors stored as 8-bit scalars (1 byte x dim), genome scale;
- ``ivf`` / ``ivf-sq8``: inverted lists over a k-means coarse quantiser (measured, not chosen).

``auto`` chooses by the number of vectors, from the recall/speed curve measured in
``benchmarks/genomics/esa_faiss_curve.py`` (see the package README).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core import clikit
from seqverse.core.clikit import InputError
from seqverse.genomics.esa.bag import BagEncoder, default_model_dir, load_inference_encoder
from seqverse.genomics.io import atomic_output, iter_fasta, reverse_complement

FORMAT = 2  # index directory layout version (1: one strand per fragment, reference.fa)
FLAT_MAX_VECTORS = 20_000  # above this, auto picks HNSW (the measured curve: see module docstring)
SQ8_MIN_VECTORS = 4_000_000  # above this, auto stores vectors as 8-bit scalars
INDEX_TYPES = ("auto", "flat", "hnsw", "hnsw-sq8", "ivf", "ivf-sq8")


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
    """A loaded index: FAISS store, per-fragment (contig id, start, length), the memory-mapped
    reference, contig names/lengths/offsets, the encoder and the build metadata."""

    faiss_index: object
    frag_contig: np.ndarray
    frag_start: np.ndarray
    frag_len: np.ndarray
    reference: bytes  # bases of every contig back to back (an mmap of reference.seq when loaded)
    contig_names: list[str]
    contig_lengths: np.ndarray
    contig_offsets: np.ndarray
    encoder: object  # BagEncoder or DNAEncoder: anything with embed_sequences and config.k/d_out
    meta: dict

    def fetch(self, contig: int, start: int, end: int) -> str:
        """Bases ``[start, end)`` of a contig (clipped to it), upper case as in the FASTA."""
        start, end = max(0, start), min(int(self.contig_lengths[contig]), end)
        off = int(self.contig_offsets[contig])
        return self.reference[off + start : off + end].decode("ascii")

    def search(self, embeddings: np.ndarray, k: int, thorough: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ``(similarities, vector ids)``; vector ``2 f + s`` is fragment ``f`` on strand ``s``.

        ``thorough``: the second pass of the search cascade (an HNSW store searched with a much
        larger ``efSearch``; a flat store is exact either way).
        """
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        params = self.meta.get("search_params", {})
        if not thorough or "efSearch" not in params:
            return self.faiss_index.search(x, k)
        hnsw = self.faiss_index.hnsw
        hnsw.efSearch = int(params.get("efSearch_thorough", 8 * params["efSearch"]))
        try:
            return self.faiss_index.search(x, k)
        finally:
            hnsw.efSearch = int(params["efSearch"])

    @property
    def has_thorough_search(self) -> bool:
        return "efSearch" in self.meta.get("search_params", {})

    @classmethod
    def from_contigs(cls, contigs: dict[str, str], encoder=None, frag=(0, 0, 0)) -> ESAIndex:
        """An in-memory index over ``contigs`` with no vector store (for tests and notebooks)."""
        seq = "".join(contigs.values()).encode("ascii")
        lengths = np.array([len(s) for s in contigs.values()], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(None, *(np.array([v]) for v in frag), seq, list(contigs), lengths, offsets, encoder, {})


def _make_store(index_type: str, dim: int, n_vectors: int):
    """An empty FAISS store of ``index_type`` and its search parameters."""
    import faiss

    if index_type == "flat":
        return faiss.IndexFlatIP(dim), {}
    if index_type in ("hnsw", "hnsw-sq8"):
        if index_type == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        return index, {"efSearch": 32, "efSearch_thorough": 256}
    if index_type in ("ivf", "ivf-sq8"):
        nlist = int(min(65536, max(64, 2 ** round(math.log2(4 * math.sqrt(n_vectors))))))
        quantizer = faiss.IndexFlatIP(dim)
        if index_type == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        return index, {"nprobe": max(8, nlist // 16)}
    raise InputError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")


def apply_search_params(index, params: dict) -> None:
    import faiss

    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    if "efSearch" in params:
        index.hnsw.efSearch = int(params["efSearch"])


def choose_index_type(n_vectors: int) -> str:
    """``auto``: exact below FLAT_MAX_VECTORS, HNSW above, HNSW over 8-bit vectors at genome scale.

    IVF is offered but never chosen: k-mer-bag embeddings do not cluster, so IVF needs most lists
    probed to hold recall (benchmarks/genomics/esa_faiss_curve.py).
    """
    if n_vectors <= FLAT_MAX_VECTORS:
        return "flat"
    return "hnsw" if n_vectors <= SQ8_MIN_VECTORS else "hnsw-sq8"


def count_fragments(reference: str | Path, fragment_len: int, stride: int) -> int:
    """Fragments a build will make (a first, cheap pass over the FASTA; sizes the store)."""
    return sum(len(fragment_starts(len(seq), fragment_len, stride)) for _, seq in iter_fasta(reference))


def build_index(
    reference: str | Path,
    out_dir: str | Path,
    model_dir: str | Path | None = None,
    fragment_len: int = 400,
    stride: int = 150,
    index_type: str = "auto",
    threads: int = 2,
    batch_size: int = 512,
    progress: bool = True,
    chunk: int = 8192,
    search_params: dict | None = None,
) -> dict:
    """Embed both strands of every fragment of ``reference`` and write the index directory.

    Streams (see the module docstring); the directory is written under a temporary name and
    renamed into place at the end, so a failed build leaves nothing behind. Returns statistics.
    """
    import faiss
    from tqdm import tqdm

    if stride <= 0 or fragment_len <= 0 or stride > fragment_len:
        raise InputError(f"need 0 < stride <= fragment_len, got stride={stride}, fragment_len={fragment_len}")
    if index_type not in INDEX_TYPES:
        raise InputError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    faiss.omp_set_num_threads(threads)
    t0 = time.time()
    model_dir = Path(model_dir) if model_dir else default_model_dir()
    encoder = load_inference_encoder(model_dir)
    if not isinstance(encoder, BagEncoder):  # a Transformer encoder runs in torch
        import torch

        torch.set_num_threads(threads)
    k = encoder.config.k
    min_len = k + max(encoder.config.pool, 1) - 1  # one pooled position of k-mers
    if fragment_len < max(2 * k, min_len):
        raise InputError(f"--fragment-len {fragment_len} is too short for the encoder (k={k}, pool={encoder.config.pool}): "
                         f"use at least {max(2 * k, min_len)}")
    n_frag = count_fragments(reference, fragment_len, stride)
    if index_type == "auto":
        index_type = choose_index_type(2 * n_frag)
    store, params = _make_store(index_type, encoder.config.d_out, 2 * n_frag)
    params.update(search_params or {})
    trained = store.is_trained

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    created = clikit.make_parents(out.parent)  # taken away again if the build fails
    tmp.mkdir()
    try:
        names, lengths = [], []
        fc, fs, fl = array("i"), array("q"), array("i")  # 16 bytes per fragment, not three Python ints
        pending: list[str] = []
        held: list[np.ndarray] = []  # vectors waiting for an IVF store to be trained
        bar = tqdm(total=n_frag, disable=not progress, desc="esa index", unit="frag")

        def embed_pending():
            nonlocal trained
            fwd = encoder.embed_sequences(pending, batch_size=batch_size)
            rev = encoder.embed_sequences([reverse_complement(s) for s in pending], batch_size=batch_size)
            both = np.empty((2 * len(pending), fwd.shape[1]), np.float32)
            both[0::2], both[1::2] = fwd, rev
            bar.update(len(pending))
            pending.clear()
            if trained:
                store.add(both)
                return
            held.append(both)
            if sum(len(h) for h in held) >= min(2 * n_frag, 65536):
                sample = np.concatenate(held)
                store.train(sample)
                store.add(sample)
                held.clear()
                trained = True

        with open(tmp / "reference.seq", "wb") as seq_out:
            for name, seq in iter_fasta(reference):
                if len(seq) < min_len:
                    raise InputError(f"{reference}: record {name}: sequence of {len(seq)} bases is shorter than the "
                                     f"{min_len} the encoder needs (k={k}, pool={encoder.config.pool})")
                if not seq.isascii():
                    raise InputError(f"{reference}: record {name}: non-ASCII characters in the sequence")
                seq_out.write(seq.encode("ascii"))
                ci = len(names)
                names.append(name)
                lengths.append(len(seq))
                for s in fragment_starts(len(seq), fragment_len, stride):
                    frag = seq[s : s + fragment_len]
                    fc.append(ci)
                    fs.append(s)
                    fl.append(len(frag))
                    pending.append(frag)
                    if len(pending) >= chunk:
                        embed_pending()
                del seq
        if pending:
            embed_pending()
        if held:  # fewer vectors than the training sample: train on all of them
            sample = np.concatenate(held)
            store.train(sample)
            store.add(sample)
        bar.close()
        t_embed = time.time() - t0
        faiss.write_index(store, str(tmp / "fragments.faiss"))
        np.save(tmp / "frag_contig.npy", np.frombuffer(fc, np.int32))
        np.save(tmp / "frag_start.npy", np.frombuffer(fs, np.int64))
        np.save(tmp / "frag_len.npy", np.frombuffer(fl, np.int32))
        shutil.copytree(model_dir, tmp / "encoder")
        meta = {
            "format": FORMAT,
            "reference": str(reference),
            "contigs": names,
            "contig_lengths": lengths,
            "bases": int(sum(lengths)),
            "fragments": len(fc),
            "vectors": int(store.ntotal),
            "fragment_len": fragment_len,
            "stride": stride,
            "index_type": index_type,
            "search_params": params,
            "dim": encoder.config.d_out,
            "embed_seconds": round(t_embed, 2),
            "seconds": 0.0,
            "bytes": 0,
        }
        meta["seconds"] = round(time.time() - t0, 2)
        meta["bytes"] = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        with atomic_output(tmp / "meta.json") as handle:
            handle.write(json.dumps(meta, indent=2) + "\n")
        for p in tmp.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        clikit.remove_created(created)
        raise
    return meta


def read_meta(directory: str | Path) -> dict:
    directory = Path(directory)
    if not (directory / "meta.json").is_file():
        raise InputError(f"{directory}: not a DNA-ESA index (no meta.json); build one with `esa index`")
    meta = json.loads((directory / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise InputError(f"{directory}: DNA-ESA index of an older layout (format {meta.get('format', 1)}); rebuild it with `esa index`")
    return meta


def _map(path: Path):
    """The reference file memory-mapped read-only (bytes-like; pages load as alignments touch them)."""
    import mmap

    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            return b""
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def load_index(directory: str | Path, with_encoder: bool = True) -> ESAIndex:
    """Reload an index directory written by :func:`build_index` (the reference memory-mapped)."""
    import faiss

    directory = Path(directory)
    meta = read_meta(directory)
    store = faiss.read_index(str(directory / "fragments.faiss"))
    apply_search_params(store, meta.get("search_params", {}))
    lengths = np.array(meta["contig_lengths"], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return ESAIndex(
        faiss_index=store,
        frag_contig=np.load(directory / "frag_contig.npy", mmap_mode="r"),
        frag_start=np.load(directory / "frag_start.npy", mmap_mode="r"),
        frag_len=np.load(directory / "frag_len.npy", mmap_mode="r"),
        reference=_map(directory / "reference.seq"),
        contig_names=list(meta["contigs"]),
        contig_lengths=lengths,
        contig_offsets=offsets,
        encoder=load_inference_encoder(directory / "encoder") if with_encoder else None,
        meta=meta,
    )
