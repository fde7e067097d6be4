"""DNA-ESA vector store: recall against search time for flat, IVF, IVF-SQ8 and HNSW stores (issue 26).

Takes a built index (its exact vectors), simulated reads and their ART truth; rebuilds the same
vectors into each store type and setting, searches every read once (one thread, CPU time), and
reports recall@k (the true fragment, on the true strand, among the top k vectors; the measure
``esa align`` depends on) against microseconds per read. ``esa index --index-type auto`` is set
from this curve (see the package README).

    python benchmarks/genomics/esa_faiss_curve.py --index runs/esa/bench/HS11286/seqverse-esa/index \
        --reads runs/esa/bench/HS11286/se.fq --truth runs/esa/bench/HS11286/se.truth.sam
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from seqverse.genomics.esa.evaluate import read_truth
from seqverse.genomics.esa.index import load_index
from seqverse.genomics.io import iter_fastq


def true_vectors(index, truth, names_reads):
    """Per read, the set of vector ids (fragment x strand) that wholly hold its true span."""
    by_contig = {n: i for i, n in enumerate(index.contig_names)}
    fc, fs, fl = np.asarray(index.frag_contig), np.asarray(index.frag_start), np.asarray(index.frag_len)
    out = []
    for name, seq in names_reads:
        contig, strand, start = truth[name]
        ok = np.flatnonzero((fc == by_contig[contig]) & (fs <= start) & (start + len(seq) <= fs + fl + 5))
        out.append(set((2 * ok + int(strand)).tolist()))
    return out


def measure(store, queries, wanted, k):
    t = time.process_time()
    _, ids = store.search(queries, k)
    us = (time.process_time() - t) / len(queries) * 1e6
    recall = float(np.mean([bool(w & set(row.tolist())) for w, row in zip(wanted, ids)]))
    return round(recall, 5), round(us, 1)


def main(argv=None) -> int:
    import faiss

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True)
    p.add_argument("--reads", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--max-reads", type=int, default=5000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "esa_faiss_curve.json"))
    args = p.parse_args(argv)
    faiss.omp_set_num_threads(1)
    import torch

    torch.set_num_threads(1)
    index = load_index(args.index)
    truth = read_truth(args.truth)
    reads = [(n, s) for n, s, _ in iter_fastq(args.reads)][: args.max_reads]
    queries = index.encoder.embed_sequences([s for _, s in reads])
    wanted = true_vectors(index, truth, reads)
    xb = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)
    d, n = xb.shape[1], xb.shape[0]
    rows = []

    def add(kind, setting, store, build_s):
        recall, us = measure(store, queries, wanted, args.k)
        rows.append({"store": kind, "setting": setting, f"recall@{args.k}": recall, "us_per_read": us,
                     "build_s": round(build_s, 2), "vectors": n})
        print(json.dumps(rows[-1]), flush=True)

    t = time.process_time()
    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    add("flat", "", flat, time.process_time() - t)
    for nlist in (256, 1024):
        for kind in ("ivf", "ivf-sq8"):
            t = time.process_time()
            q = faiss.IndexFlatIP(d)
            store = (faiss.IndexIVFFlat(q, d, nlist, faiss.METRIC_INNER_PRODUCT) if kind == "ivf" else
                     faiss.IndexIVFScalarQuantizer(q, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT))
            store.train(xb[np.random.default_rng(0).permutation(n)[: 64 * nlist]])
            store.add(xb)
            build = time.process_time() - t
            for nprobe in (4, 8, 16, 32, 64):
                store.nprobe = nprobe
                add(kind, f"nlist {nlist}, nprobe {nprobe}", store, build)
    t = time.process_time()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(xb)
    build = time.process_time() - t
    for ef in (16, 32, 64, 128):
        hnsw.hnsw.efSearch = ef
        add("hnsw", f"M 32, efSearch {ef}", hnsw, build)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"index": args.index, "reads": len(reads), "k": args.k, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
