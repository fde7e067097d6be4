"""Why is DNA-ESA recall@1 capped near 85%? Classify every top-1 miss of an encoder (issue 26).

For each read whose top-1 vector is not a fragment holding the read's true span on its strand
(``retrieval_recall``'s definition), the miss is one of:

- ``neighbour``: the top-1 fragment is on the right contig and strand and overlaps the true span,
  but leaves ``deficit`` bases of the read outside it (the fragment just before or after the
  source fragment: with 400 bp fragments every 150 bp, a 250 bp read lies in one fragment and
  overlaps its neighbours by up to 249 bases);
- ``wrong strand``: the right place, the other strand;
- ``elsewhere``: another region (a repeat, a paralog, or a plain embedding error).

It also reports the ``exact-bag oracle``: top-1 among the true fragment and its neighbours by the
exact count of the read's k-mers each holds (no projection), the best a k-mer bag can do there.

    python benchmarks/genomics/esa_recall_misses.py --index runs/esa/recall/idx_random-bag \
        --reads runs/esa/recall/reads.fq --truth runs/esa/recall/reads.truth.sam
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np


def kmer_set(seq: str, k: int) -> set[str]:
    return {seq[i : i + k] for i in range(len(seq) - k + 1)}


def classify(index_dir: str, reads_path: str, truth_path: str, limit: int | None = None) -> dict:
    from seqverse.genomics.esa.evaluate import read_truth
    from seqverse.genomics.esa.index import load_index
    from seqverse.genomics.io import iter_fastq, reverse_complement

    index = load_index(index_dir)
    truth = read_truth(truth_path)
    reads = [(n, s) for n, s, _ in iter_fastq(reads_path)][:limit]
    emb = index.encoder.embed_sequences([s for _, s in reads])
    _, ids = index.search(emb, 1)
    starts = np.asarray(index.frag_start)
    flen = int(index.frag_len[0])
    stride = int(index.meta["stride"])
    k = index.encoder.config.k
    kinds, deficits = Counter(), Counter()
    oracle_hits = 0
    for j, (name, seq) in enumerate(reads):
        contig, rev, start = truth[name]
        end = start + len(seq)
        v = int(ids[j, 0])
        f, strand = v >> 1, bool(v & 1)
        fs = int(starts[f])
        same_contig = index.contig_names[index.frag_contig[f]] == contig
        # the exact-bag oracle among the fragments overlapping the read
        first = max(0, (start - flen) // stride)
        cands = [g for g in range(first, min(len(starts), first + 2 * flen // stride + 3))
                 if starts[g] < end and starts[g] + flen > start]
        read_fwd = reverse_complement(seq) if rev else seq
        rk = kmer_set(read_fwd, k)
        shared = [len(rk & kmer_set(index.fetch(index.frag_contig[g], int(starts[g]), int(starts[g]) + flen), k)) for g in cands]
        best = cands[int(np.argmax(shared))] if cands else None
        oracle_hits += best is not None and int(starts[best]) <= start and end <= int(starts[best]) + flen + 5
        if same_contig and strand == rev and fs <= start and end <= fs + flen + 5:
            kinds["hit"] += 1
        elif same_contig and fs < end and fs + flen > start:
            if strand != rev:
                kinds["wrong strand"] += 1
            else:
                kinds["neighbour"] += 1
                deficit = max(0, fs - start) + max(0, end - (fs + flen))
                deficits[min(deficit // 10 * 10, 100)] += 1
        else:
            kinds["elsewhere"] += 1
    n = len(reads)
    return {"index": index_dir, "reads": n, "recall@1": round(kinds["hit"] / n, 4),
            "misses": {k2: v for k2, v in kinds.items() if k2 != "hit"},
            "neighbour_deficit_bp": {f"{d}-{d + 9}" if d < 100 else ">=100": deficits[d] for d in sorted(deficits)},
            "exact_bag_oracle_recall@1": round(oracle_hits / n, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True, action="append", help="index directory (repeat for several)")
    p.add_argument("--reads", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--limit", type=int, default=None, help="first N reads only")
    args = p.parse_args(argv)
    for idx in args.index:
        print(json.dumps(classify(idx, args.reads, args.truth, args.limit)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
