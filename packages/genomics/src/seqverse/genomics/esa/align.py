"""DNA-ESA alignment (Holur et al. 2023, Sec. 3.4): embed, search the vector store, align exactly.

Per batch of reads: embed both strands of every read, search the FAISS store for the nearest
fragments over the whole reference, merge the hits of each read into candidate windows (same
contig and strand, overlapping after padding), score the read against every window with
parasail's striped SIMD Smith-Waterman (scores with bwa-mem's defaults: match 1, mismatch 4, gap
open 6 + 1 per base), trace back only the best, and write SAM. MAPQ follows bwa-mem's
``mem_approx_mapq_se`` (best vs second-best score gap, scaled by identity). Memory does not grow
with the number of reads: reads stream in batches and SAM streams out.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.genomics.esa.index import ESAIndex, load_index
from seqverse.genomics.io import atomic_output, iter_fastq, reverse_complement, sam_header

MATCH, MISMATCH, GAP_OPEN, GAP_EXTEND = 1, 4, 6, 1  # bwa-mem defaults: a gap of L bases costs 6 + L
N_SCORE = -1  # any base against N
MIN_SCORE = 30  # bwa-mem -T: lower-scoring alignments are reported unmapped
WINDOW_PAD = 64  # bases added on each side of a hit fragment, so reads straddling its edge still align
_NON_ACGT = re.compile(r"[^ACGT]")


@dataclass
class Hit:
    """One aligned window: 0-based leftmost reference position, CIGAR with soft clips, score, NM."""

    contig: int
    reverse: bool
    pos: int
    cigar: str
    score: int
    nm: int


_matrix = None


def scoring_matrix():
    global _matrix
    if _matrix is None:
        import parasail

        m = parasail.matrix_create("ACGTN", MATCH, -MISMATCH)
        for i in range(5):
            m.set_value(4, i, N_SCORE)
            m.set_value(i, 4, N_SCORE)
        _matrix = m
    return _matrix


def candidate_windows(index: ESAIndex, frag_ids, reverse_flags, read_len: int) -> list[tuple[int, bool, int, int]]:
    """Hit fragments -> windows ``(contig, reverse, start, end)``: each fragment padded by
    ``WINDOW_PAD``, overlapping windows on the same contig and strand merged into one."""
    contig, lo, hi = index.windows(WINDOW_PAD)
    items = sorted({(contig[f], r, lo[f], hi[f]) for f, r in zip(frag_ids.tolist(), reverse_flags.tolist()) if f >= 0})
    merged: list[list] = []
    for c, r, start, end in items:
        last = merged[-1] if merged else None
        if last and last[0] == c and last[1] == r and start <= last[3]:
            last[3] = max(last[3], end)
        else:
            merged.append([c, r, start, end])
    return [tuple(w) for w in merged]


def _cigar_from_parasail(decoded: str, beg_query: int, end_query: int, read_len: int) -> tuple[str, int, int]:
    """parasail's =/X/I/D CIGAR -> (SAM CIGAR with M/I/D and soft clips, NM, reference bases skipped at the start).

    parasail's local-alignment CIGAR may begin or end with gap operations (the stretch of the
    window before the alignment): leading/trailing deletions are dropped (the first is returned so
    the caller can move POS), leading/trailing insertions become soft clips.
    """
    ops = [(int(n), op) for n, op in re.findall(r"(\d+)([=XIDM])", decoded)]
    skip = 0
    while ops and ops[0][1] in "ID":
        n, op = ops.pop(0)
        if op == "D":
            skip += n
        else:
            beg_query += n
    while ops and ops[-1][1] in "ID":
        n, op = ops.pop()
        if op == "I":
            end_query -= n
    out: list[list] = []
    nm = 0
    for n, op in ops:
        if op in "XID":
            nm += n
        op = "M" if op in "=X" else op
        if out and out[-1][1] == op:
            out[-1][0] += n
        else:
            out.append([n, op])
    cigar = "".join(f"{n}{op}" for n, op in out)
    lead, tail = beg_query, read_len - 1 - end_query
    return (f"{lead}S" if lead else "") + cigar + (f"{tail}S" if tail else ""), nm, skip


def align_read(index: ESAIndex, read: str, windows) -> tuple[Hit | None, int, int]:
    """Smith-Waterman of both read strands against the windows -> (best hit, best, second-best score)."""
    import parasail

    matrix = scoring_matrix()
    fwd = _NON_ACGT.sub("N", read)
    strands = {False: fwd, True: reverse_complement(fwd)}
    profiles: dict[bool, object] = {}
    scored = []
    names = index.contig_names
    for c, rev, start, end in windows:
        if rev not in profiles:
            profiles[rev] = parasail.profile_create_16(strands[rev], matrix)
        ref = index.contigs[names[c]][start:end]
        r = parasail.sw_striped_profile_16(profiles[rev], ref, GAP_OPEN + GAP_EXTEND, GAP_EXTEND)
        scored.append((r.score, c, rev, start + r.end_ref))
    if not scored:
        return None, 0, 0
    scored.sort(key=lambda x: -x[0])
    best = scored[0]
    # second best: the best score at a different place (windows never overlap, but be safe)
    sub = next((s[0] for s in scored[1:] if not (s[1] == best[1] and s[2] == best[2] and abs(s[3] - best[3]) < 20)), 0)
    score, c, rev, ref_end = best
    if score < MIN_SCORE:
        return None, score, sub
    q = strands[rev]
    lo = max(0, ref_end - 2 * len(q))
    ref = index.contigs[names[c]][lo : ref_end + 1]
    t = parasail.sw_trace_striped_16(q, ref, GAP_OPEN + GAP_EXTEND, GAP_EXTEND, matrix)
    cig = t.cigar
    decoded = cig.decode.decode() if isinstance(cig.decode, bytes) else cig.decode
    cigar, nm, skip = _cigar_from_parasail(decoded, cig.beg_query, t.end_query, len(q))
    return Hit(c, rev, lo + cig.beg_ref + skip, cigar, t.score, nm), score, sub


def mapq(best: int, sub: int, read_len: int, n_sub: int = 0) -> int:
    """bwa-mem's ``mem_approx_mapq_se`` (mapQ_coef_len 50): score gap to the runner-up, times identity."""
    if best <= 0:
        return 0
    sub = max(sub, 19 * MATCH)  # bwa: no runner-up counts as one min-seed-length hit
    identity = 1.0 - (read_len * MATCH - best) / (MATCH + MISMATCH) / read_len
    tmp = 1.0 if read_len < 50 else math.log(50) / math.log(read_len)
    tmp *= identity * identity
    q = int(6.02 * (best - sub) / MATCH * tmp * tmp + 0.499)
    q -= int(4.343 * math.log(n_sub + 1) + 0.499)
    return max(0, min(60, q))


def sam_record(name: str, seq: str, qual: str, hit: Hit | None, best: int, sub: int, index: ESAIndex) -> str:
    if hit is None:
        return f"{name}\t4\t*\t0\t0\t*\t*\t0\t0\t{seq}\t{qual}\tAS:i:0\tXS:i:{sub}\n"
    q = mapq(best, sub, len(seq))
    flag = 16 if hit.reverse else 0
    if hit.reverse:
        seq, qual = reverse_complement(seq), qual[::-1]
    contig = index.contig_names[hit.contig]
    return (
        f"{name}\t{flag}\t{contig}\t{hit.pos + 1}\t{q}\t{hit.cigar}\t*\t0\t0\t{seq}\t{qual}"
        f"\tNM:i:{hit.nm}\tAS:i:{hit.score}\tXS:i:{sub}\n"
    )


def retrieve(index: ESAIndex, reads: list[str], top_k: int, per_strand: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embed both strands of every read and search the store with each.

    ``per_strand=True`` keeps the ``top_k`` fragments of each strand (``2 * top_k`` candidates,
    interleaved by rank), so a strand whose similarities run lower is still searched;
    ``per_strand=False`` keeps the ``top_k`` best over both strands by similarity (DNA-ESA's
    ranking, used for its top-1 evaluation). Returns ``(similarities, fragment ids, reverse flags)``.
    """
    return rank_hits(*search_strands(index, reads, top_k), per_strand)


def search_strands(index: ESAIndex, reads: list[str], top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k similarities and fragment ids for every read (rows ``:n``) and its reverse complement (rows ``n:``)."""
    k_min = index.encoder.config.k
    seqs = [r if len(r) >= k_min else "N" * k_min for r in reads]
    emb = index.encoder.embed_sequences(seqs + [reverse_complement(r) for r in seqs])
    return index.search(emb, top_k)


def rank_hits(d: np.ndarray, i: np.ndarray, per_strand: bool, top_k: int | None = None):
    """Arrange both strands' hits (see :func:`retrieve`); ``top_k`` may cut a deeper search shorter."""
    n = d.shape[0] // 2
    top_k = top_k or d.shape[1]
    d, i = np.concatenate([d[:n, :top_k], d[n:, :top_k]]), np.concatenate([i[:n, :top_k], i[n:, :top_k]])
    fwd_rev = np.zeros((n, 2 * top_k), bool)
    if per_strand:
        scores = np.stack([d[:n], d[n:]], 2).reshape(n, -1)
        ids = np.stack([i[:n], i[n:]], 2).reshape(n, -1)
        fwd_rev[:, 1::2] = True
        return scores, ids, fwd_rev
    scores = np.concatenate([d[:n], d[n:]], 1)
    ids = np.concatenate([i[:n], i[n:]], 1)
    fwd_rev[:, top_k:] = True
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    take = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
    return take(scores), take(ids), take(fwd_rev)


def align_fastq(
    index_dir: str | Path,
    reads_path: str | Path,
    out_path: str | Path,
    top_k: int = 5,
    threads: int = 2,
    batch_size: int = 512,
    progress: bool = True,
    command_line: str | None = None,
) -> dict:
    """Align a FASTQ file against an index directory and write SAM; returns run statistics."""
    import faiss
    import torch
    from tqdm import tqdm


    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    index = load_index(index_dir)
    command_line = command_line or " ".join(shlex.quote(a) for a in sys.argv)
    t0 = time.time()
    n = mapped = 0
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    bar = tqdm(disable=not progress, desc="esa align", unit="read")
    with atomic_output(out_path) as out:
        out.write(sam_header({k: len(v) for k, v in index.contigs.items()}, "seqverse-esa", "0.1.0", command_line))
        batch: list[tuple[str, str, str]] = []

        def flush():
            nonlocal n, mapped
            seqs = [s for _, s, _ in batch]
            _, ids, rev = retrieve(index, seqs, top_k)
            jobs = [(s, candidate_windows(index, ids[j], rev[j], len(s))) for j, s in enumerate(seqs)]
            results = list(pool.map(lambda a: align_read(index, *a), jobs)) if pool else [align_read(index, *a) for a in jobs]
            for (name, seq, qual), (hit, best, sub) in zip(batch, results):
                out.write(sam_record(name, seq, qual, hit, best, sub, index))
                mapped += hit is not None
            n += len(batch)
            bar.update(len(batch))
            batch.clear()

        for record in iter_fastq(reads_path):
            batch.append(record)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    bar.close()
    if pool:
        pool.shutdown()
    seconds = time.time() - t0
    return {"reads": n, "mapped": mapped, "seconds": round(seconds, 2), "reads_per_s": round(n / max(seconds, 1e-9), 1)}
