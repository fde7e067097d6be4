"""DNA-ESA alignment (Holur et al. 2023, Sec. 3.4): embed, search the vector store, align exactly.

Per batch of reads: embed every read once (the store holds both strands of every fragment), take
the ``top_k`` nearest fragment vectors over the whole reference, merge them into candidate windows
(same contig and strand, overlapping after padding), and align the read in each window:

1. **Seeds and the ungapped fast path.** A few exact 16-mers of the read are looked up in the
   window; each occurrence gives a diagonal, scored ungapped (best local segment). If the best
   one covers the whole read with at most one mismatch, no N, and every proper prefix and suffix
   scoring above zero, it is provably the window's optimal local alignment (any gapped alignment
   scores at most ``len - 7``; any other ungapped one of that score would share a seed), so it is
   reported without dynamic programming. If it covers the whole read but scores lower, a
   score-only striped Smith-Waterman over a narrow slice around the diagonal confirms it is optimal.
2. **Smith-Waterman fallback.** Otherwise parasail's striped SW scores slices around the best
   diagonals (or whole windows when no seed matched) and traces back the best.

:func:`align_read_reference` is the plain version (full SW with traceback in every window); a test
holds the two equal. Scores are bwa-mem's defaults (match 1, mismatch 4, gap open 6 + 1 per base,
N -1). MAPQ follows bwa-mem's ``mem_approx_mapq_se`` (single end) and ``mem_sam_pe`` (pairs):
best vs second-best score, scaled by identity. Pairs: insert size estimated per batch from
uniquely placed FR pairs (bwa's quartile bounds), pairs chosen by summed score plus an insert-size
log-likelihood against an unpaired penalty of 17, a mate rescued by SW near its partner when no
proper pair was found. SAM carries NM, MD, AS, XS, XA (near-equal hits), MC, RG.
Reads stream through in batches split over worker processes; SAM streams out in input order.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shlex
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError
from seqverse.genomics.esa.index import ESAIndex, load_index, read_meta
from seqverse.genomics.io import atomic_output, iter_fastq, reverse_complement, sam_header

MATCH, MISMATCH, GAP_OPEN, GAP_EXTEND = 1, 4, 6, 1  # bwa-mem defaults: a gap of L bases costs 6 + L
N_SCORE = -1  # any base against N
MIN_SCORE = 30  # bwa-mem -T: lower-scoring alignments are reported unmapped
MIN_SEED_SCORE = 19  # bwa-mem -k 19 x match: the runner-up score assumed when none was found
WINDOW_PAD = 64  # bases added on each side of a hit fragment, so reads straddling its edge still align
SEED_LEN, N_SEEDS, MAX_SEED_HITS = 16, 5, 8
SLICE_PAD = 24  # bases either side of a diagonal given to Smith-Waterman
XA_RATIO, XA_MAX = 0.8, 5  # bwa-mem -h 5: near-equal hits (score >= 80% of best) go to XA when at most 5
PEN_UNPAIRED = 17  # bwa-mem -U
RETRY_FRACTION = 0.8  # search cascade: a best score under this x read length triggers a thorough search
_SANITIZE = bytes.maketrans(bytes(range(256)), bytes(c if c in b"ACGT" else ord("N") for c in range(256)))
_N = ord("N")
_IS_ACGT = np.zeros(256, bool)
_IS_ACGT[list(b"ACGT")] = True
_CIGAR_OPS = re.compile(r"(\d+)([MIDS])")
_NONZERO = bytes([0] + [1] * 255)
_NOT_ACGT = bytes(0 if c in b"ACGT" else 1 for c in range(256))


@dataclass
class Hit:
    """One alignment: 0-based leftmost reference position, CIGAR with soft clips, score; NM and MD
    are computed when first read, from ``src`` = (read strand, reference from ``pos`` on)."""

    contig: int
    reverse: bool
    pos: int
    cigar: str
    score: int
    src: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        ops = _CIGAR_OPS.findall(self.cigar)
        self.ref_len = sum(int(n) for n, op in ops if op in "MD")
        self.query_len = sum(int(n) for n, op in ops if op in "MI")
        self._md_nm: tuple[str, int] | None = None

    @property
    def end(self) -> int:
        return self.pos + self.ref_len

    @property
    def md(self) -> str:
        if self._md_nm is None:
            self._md_nm = md_nm(*self.src, self.cigar)
        return self._md_nm[0]

    @property
    def nm(self) -> int:
        if self._md_nm is None:
            self._md_nm = md_nm(*self.src, self.cigar)
        return self._md_nm[1]


@dataclass
class ReadAlignment:
    """A read's hits at distinct places, best first (``hits[0]`` is primary when its score >= MIN_SCORE)."""

    hits: list[Hit] = field(default_factory=list)
    fast: bool = False  # primary from the ungapped fast path

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits and self.hits[0].score >= MIN_SCORE else None

    def sub(self, hit: Hit | None = None) -> int:
        """Best score at another place than ``hit`` (default the primary)."""
        hit = hit or (self.hits[0] if self.hits else None)
        return max((h.score for h in self.hits if h is not hit), default=0)

    def n_sub(self, hit: Hit | None = None) -> int:
        """Other places scoring within a gap's cost of ``hit`` (bwa-mem's ``sub_n``)."""
        hit = hit or (self.hits[0] if self.hits else None)
        return sum(1 for h in self.hits if h is not hit and hit.score - h.score <= GAP_OPEN + GAP_EXTEND)


# ----------------------------------------------------------------------------- scoring primitives
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


def sanitize(read: str) -> str:
    """Upper case, every non-ACGT base as N (what is scored and written to SAM)."""
    return read.upper().encode("ascii", "replace").translate(_SANITIZE).decode("ascii")


def _mismatches(q: str, r: str) -> list[int]:
    """Positions where two equal-length strings differ or ``q`` holds an N (XOR of the byte strings)."""
    n = len(q)
    qb, rb = q.encode("ascii"), r.encode("ascii")
    if qb == rb and "N" not in q:
        return []
    flags = (int.from_bytes(qb, "big") ^ int.from_bytes(rb, "big")).to_bytes(n, "big").translate(_NONZERO)
    out, i = [], flags.find(b"\x01")
    while i >= 0:
        out.append(i)
        i = flags.find(b"\x01", i + 1)
    if "N" in q:
        out = sorted(set(out) | {i for i, c in enumerate(q) if c == "N"})
    return out


def md_nm(query: str, ref: str, cigar: str) -> tuple[str, int]:
    """SAM MD string and NM of ``query`` aligned by ``cigar`` to ``ref`` (starting at the alignment's POS).

    A base matches when it equals the reference base and is not N (samtools calmd's rule).
    """
    md: list[str] = []
    run = nm = qi = ri = 0
    for n, op in _CIGAR_OPS.findall(cigar):
        n = int(n)
        if op == "S":
            qi += n
        elif op == "I":
            qi += n
            nm += n
        elif op == "D":
            md.append(f"{run}^{ref[ri : ri + n]}")
            run, ri, nm = 0, ri + n, nm + n
        else:
            last = 0
            for j in _mismatches(query[qi : qi + n], ref[ri : ri + n]):
                md.append(f"{run + j - last}{ref[ri + j]}")
                run, last = 0, j + 1
                nm += 1
            run += n - last
            qi, ri = qi + n, ri + n
    md.append(str(run))
    return "".join(md), nm


def base_scores(qa: np.ndarray, ra: np.ndarray) -> np.ndarray:
    """Per-position scores of two equal-length base arrays: +1 match, -4 mismatch, -1 against N."""
    s = np.where(qa == ra, MATCH, -MISMATCH)
    s[(qa == _N) | ~_IS_ACGT[ra]] = N_SCORE
    return s


def best_segment(scores: np.ndarray) -> tuple[int, int, int]:
    """Maximum-sum segment ``(score, begin, end)`` (Kadane via prefix sums; the shortest among ties)."""
    c = np.concatenate([[0], np.cumsum(scores)])
    low = np.minimum.accumulate(c)
    j = int(np.argmax(c - low))
    i = int(j - np.argmin(c[j::-1]))  # last position of the running minimum before j
    return int(c[j] - c[i]), i, j


@lru_cache(maxsize=1024)
def _seed_offsets(n: int) -> tuple[int, ...]:
    return tuple(sorted({round(i * (n - SEED_LEN) / (N_SEEDS - 1)) for i in range(N_SEEDS)}))


def seed_diagonals(q: str, ref: str) -> list[int]:
    """Diagonals (reference offset of read base 0) at which exact 16-mers of ``q`` occur in ``ref``."""
    n = len(q)
    if n < SEED_LEN:
        return []
    diags: set[int] = set()
    for o in _seed_offsets(n):
        seed = q[o : o + SEED_LEN]
        if "N" in seed:
            continue
        p, found = ref.find(seed), 0
        while p >= 0 and found < MAX_SEED_HITS:
            diags.add(p - o)
            p, found = ref.find(seed, p + 1), found + 1
    return sorted(diags)


def ungapped_segment(q: str, r: str) -> tuple[int, int, int, bool]:
    """Best local ungapped alignment of two equal-length strings -> (score, begin, end, provably optimal).

    The same result as ``best_segment(base_scores(q, r))`` (the plain version, held equal by a
    test) from the positions that differ or hold an N only, found by XOR of the byte strings, so
    a read with a few mismatches costs a few Python steps. ``provably optimal``: the segment is the
    whole read, scores above ``len - 7`` (beats any gapped alignment), has no N, and every proper
    prefix and suffix scores above zero (no tie with a clipped alignment).
    """
    n = len(q)
    qb, rb = q.encode("ascii"), r.encode("ascii")
    if qb == rb and "N" not in q:
        return n, 0, n, True
    flags = bytearray((int.from_bytes(qb, "big") ^ int.from_bytes(rb, "big")).to_bytes(n, "big").translate(_NONZERO))
    has_n = "N" in q or any(rb.translate(_NOT_ACGT))
    if has_n:
        for i, (a, b) in enumerate(zip(qb, rb)):
            if a == _N or _NOT_ACGT[b]:
                flags[i] = 2
    if has_n:
        events = [(j, N_SCORE if f == 2 else -MISMATCH) for j, f in enumerate(flags) if f]
    else:
        events, i = [], flags.find(b"\x01")
        while i >= 0:
            events.append((i, -MISMATCH))
            i = flags.find(b"\x01", i + 1)
    best = bs = be = 0
    cur, start, last = 0, 0, 0
    for j, penalty in events:
        cur += j - last
        if cur > best:
            best, bs, be = cur, start, j
        cur += penalty
        if cur <= 0:
            cur, start = 0, j + 1
        last = j + 1
    cur += n - last
    if cur > best:
        best, bs, be = cur, start, n
    optimal = (bs == 0 and be == n and best > n - (GAP_OPEN + GAP_EXTEND) and not has_n
               and all(j >= 5 and n - 1 - j >= 5 for j, _ in events))
    return best, bs, be, optimal


def ungapped_hit(q: str, ref: str, d: int, contig: int, reverse: bool, ref_start: int) -> tuple[Hit, bool, bool]:
    """Best local ungapped alignment of ``q`` on diagonal ``d`` of ``ref`` -> (hit, full_length, provably_optimal)."""
    L = len(q)
    lo, hi = max(0, -d), min(L, len(ref) - d)
    score, i, j, optimal = ungapped_segment(q[lo:hi], ref[lo + d : hi + d])
    qb, qe = lo + i, lo + j
    cigar = (f"{qb}S" if qb else "") + f"{qe - qb}M" + (f"{L - qe}S" if qe < L else "")
    full = qb == 0 and qe == L
    return Hit(contig, reverse, ref_start + d + qb, cigar, score, (q, ref[d + qb : d + qe])), full, optimal and full


def cigar_from_parasail(decoded: str, beg_query: int, end_query: int, read_len: int) -> tuple[str, int]:
    """parasail's =/X/I/D CIGAR -> (SAM CIGAR with M/I/D and soft clips, reference bases skipped at the start).

    parasail's local-alignment CIGAR may begin or end with gap operations: leading/trailing
    deletions are dropped (the leading one moves POS), leading/trailing insertions become clips.
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
    for n, op in ops:
        op = "M" if op in "=X" else op
        if out and out[-1][1] == op:
            out[-1][0] += n
        else:
            out.append([n, op])
    cigar = "".join(f"{n}{op}" for n, op in out)
    lead, tail = beg_query, read_len - 1 - end_query
    return (f"{lead}S" if lead else "") + cigar + (f"{tail}S" if tail else ""), skip


def sw_score(q: str, ref: str, profile=None) -> int:
    """Optimal local alignment score (parasail striped, score only)."""
    import parasail

    profile = profile or parasail.profile_create_16(q, scoring_matrix())
    return parasail.sw_striped_profile_16(profile, ref.translate(_REF_TO_N), GAP_OPEN + GAP_EXTEND, GAP_EXTEND).score


_REF_TO_N = str.maketrans({c: "N" for c in "RYKMSWBDHVU"})


def sw_hit(q: str, ref: str, contig: int, reverse: bool, ref_start: int) -> Hit:
    """Smith-Waterman with traceback of ``q`` against ``ref`` (parasail striped) as a Hit."""
    import parasail

    t = parasail.sw_trace_striped_16(q, ref.translate(_REF_TO_N), GAP_OPEN + GAP_EXTEND, GAP_EXTEND, scoring_matrix())
    cig = t.cigar
    decoded = cig.decode.decode() if isinstance(cig.decode, bytes) else cig.decode
    cigar, skip = cigar_from_parasail(decoded, cig.beg_query, t.end_query, len(q))
    pos = cig.beg_ref + skip
    return Hit(contig, reverse, ref_start + pos, cigar, t.score, (q, ref[pos:]))


# ----------------------------------------------------------------------------- one read
def candidate_windows(index: ESAIndex, vector_ids) -> list[tuple[int, bool, int, int]]:
    """Hit vectors -> windows ``(contig, reverse, start, end)``: each fragment padded by ``WINDOW_PAD``,
    overlapping windows on the same contig and strand merged into one."""
    items = set()
    for v in np.asarray(vector_ids).tolist():
        if v < 0:
            continue
        f = v >> 1
        c = int(index.frag_contig[f])
        start = int(index.frag_start[f])
        items.add((c, bool(v & 1), max(0, start - WINDOW_PAD),
                   min(int(index.contig_lengths[c]), start + int(index.frag_len[f]) + WINDOW_PAD)))
    merged: list[list] = []
    for c, r, start, end in sorted(items):
        last = merged[-1] if merged else None
        if last and last[0] == c and last[1] == r and start <= last[3]:
            last[3] = max(last[3], end)
        else:
            merged.append([c, r, start, end])
    return [tuple(w) for w in merged]


def _distinct(hits: list[Hit]) -> list[Hit]:
    """Best first, one hit per place (same contig and strand, overlapping on the reference)."""
    out: list[Hit] = []
    for h in sorted(hits, key=lambda h: (-h.score, h.contig, h.pos, h.reverse)):
        if not any(_same_place(o, h) for o in out):
            out.append(h)
    return out


def _same_place(a: Hit, b: Hit) -> bool:
    return a.contig == b.contig and a.reverse == b.reverse and a.pos < b.end and b.pos < a.end


def align_read(index: ESAIndex, read: str, windows, max_hits: int = 8) -> ReadAlignment:
    """Align ``read`` in its candidate windows: seeds + ungapped fast path, SW fallback (module docstring)."""
    import parasail

    fwd = sanitize(read)
    strands = {False: fwd, True: reverse_complement(fwd)}
    L = len(fwd)
    found: list[tuple[Hit, bool, bool, int, int]] = []  # (hit, full, optimal, window, diagonal)
    refs = []
    for wi, (c, rev, start, end) in enumerate(windows):
        ref = index.fetch(c, start, end)
        refs.append(ref)
        diags = seed_diagonals(strands[rev], ref)
        for d in diags:
            hit, full, optimal = ungapped_hit(strands[rev], ref, d, c, rev, start)
            found.append((hit, full, optimal and len(diags) == 1, wi, d))
    found.sort(key=lambda x: -x[0].score)
    hits = [f[0] for f in found]
    if found:
        top, full, optimal, wi, d = found[0]
        if optimal and not any(refs[wi].encode("ascii").translate(_NOT_ACGT)):  # no N in the window either
            return ReadAlignment(_distinct(hits)[:max_hits], fast=True)
        c, rev, start, _ = windows[wi]
        lo = max(0, d - SLICE_PAD)
        if sw_score(strands[rev], refs[wi][lo : d + L + SLICE_PAD]) == top.score:  # the ungapped hit is optimal
            return ReadAlignment(_distinct(hits)[:max_hits], fast=True)
    # Smith-Waterman: slices around the best diagonals, or whole windows when no seed matched
    profiles: dict[bool, object] = {}
    slices = []
    seen = set()
    for _hit, _, _, wi, d in found:
        if (wi, d) in seen or len(slices) == 3:
            continue
        seen.add((wi, d))
        lo = max(0, d - SLICE_PAD)
        slices.append((wi, lo, min(len(refs[wi]), d + L + SLICE_PAD)))
    if not slices:
        slices = [(wi, 0, len(ref)) for wi, ref in enumerate(refs)]
    if not slices:  # no window at all (a store with fewer vectors than top-k)
        return ReadAlignment([], fast=False)
    scored = []
    for wi, lo, hi in slices:
        c, rev, start, _ = windows[wi]
        if rev not in profiles:
            profiles[rev] = parasail.profile_create_16(strands[rev], scoring_matrix())
        scored.append((sw_score(strands[rev], refs[wi][lo:hi], profiles[rev]), wi, lo, hi))
    scored.sort(key=lambda x: -x[0])
    best_score, wi, lo, hi = scored[0]
    if best_score > 0:
        c, rev, start, _ = windows[wi]
        hits.append(sw_hit(strands[rev], refs[wi][lo:hi], c, rev, start + lo))
    return ReadAlignment(_distinct(hits)[:max_hits], fast=False)


def align_read_reference(index: ESAIndex, read: str, windows) -> Hit | None:
    """The plain version of :func:`align_read`'s primary: SW with traceback in every window, best kept."""
    fwd = sanitize(read)
    strands = {False: fwd, True: reverse_complement(fwd)}
    hits = [sw_hit(strands[rev], index.fetch(c, start, end), c, rev, start) for c, rev, start, end in windows]
    hits.sort(key=lambda h: -h.score)
    return hits[0] if hits else None


# ----------------------------------------------------------------------------- MAPQ
def mapq_se(score: int, sub: int, aligned_len: int, n_sub: int = 0) -> int:
    """bwa-mem's ``mem_approx_mapq_se`` (mapQ_coef_len 50): score gap to the runner-up, times identity."""
    if score <= 0:
        return 0
    sub = max(sub, MIN_SEED_SCORE * MATCH)
    if sub >= score:
        return 0
    L = max(aligned_len, 1)
    identity = 1.0 - (L * MATCH - score) / (MATCH + MISMATCH) / L
    tmp = 1.0 if L < 50 else math.log(50) / math.log(L)
    tmp *= identity * identity
    q = int(6.02 * (score - sub) / MATCH * tmp * tmp + 0.499)
    if n_sub > 0:
        q -= int(4.343 * math.log(n_sub + 1) + 0.499)
    return max(0, min(60, q))


def hit_mapq(aln: ReadAlignment, hit: Hit) -> int:
    return mapq_se(hit.score, aln.sub(hit), max(hit.query_len, hit.ref_len), aln.n_sub(hit))


# ----------------------------------------------------------------------------- pairs
@dataclass
class InsertStats:
    """FR insert-size distribution (bwa-mem's ``mem_pestat``): mean, sd and the proper-pair bounds."""

    avg: float
    std: float
    low: int
    high: int
    n: int


def insert_size(a: Hit, b: Hit) -> int | None:
    """Outer distance of an FR pair (forward read's start to reverse read's end), None if not FR."""
    if a.contig != b.contig or a.reverse == b.reverse:
        return None
    f, r = (a, b) if not a.reverse else (b, a)
    ins = r.end - f.pos
    return ins if ins > 0 and f.pos <= r.pos + 1 else None


def estimate_insert(pairs: list[tuple[ReadAlignment, ReadAlignment]], min_pairs: int = 25) -> InsertStats | None:
    """From pairs whose ends are both placed uniquely (score ahead of the runner-up by >= 10)."""
    sizes = []
    for a1, a2 in pairs:
        h1, h2 = a1.best, a2.best
        if h1 and h2 and h1.score - a1.sub() >= 10 and h2.score - a2.sub() >= 10:
            ins = insert_size(h1, h2)
            if ins is not None:
                sizes.append(ins)
    if len(sizes) < min_pairs:
        return None
    x = np.array(sizes, float)
    p25, p75 = np.percentile(x, [25, 75])
    iqr = p75 - p25
    keep = x[(x >= p25 - 2 * iqr) & (x <= p75 + 2 * iqr)]
    avg, std = float(keep.mean()), float(max(keep.std(), 1.0))
    low = min(int(p25 - 3 * iqr + 0.499), int(avg - 4 * std + 0.499))
    high = max(int(p75 + 3 * iqr + 0.499), int(avg + 4 * std + 0.499))
    return InsertStats(round(avg, 1), round(std, 1), max(1, low), high, len(sizes))


def rescue_mate(index: ESAIndex, anchor: Hit, mate_read: str, stats: InsertStats) -> Hit | None:
    """Smith-Waterman of the mate, on the opposite strand, where the insert-size bounds put it (bwa's mate rescue)."""
    L = len(mate_read)
    if anchor.reverse:  # mate forward, upstream
        start, end, rev = anchor.end - stats.high, anchor.end - max(stats.low - L, 0) + L, False
    else:
        start, end, rev = anchor.pos + max(stats.low - L, 0) - L, anchor.pos + stats.high, True
    start, end = max(0, start), min(int(index.contig_lengths[anchor.contig]), end)
    if end - start < L // 2:
        return None
    q = sanitize(mate_read)
    q = reverse_complement(q) if rev else q
    hit = sw_hit(q, index.fetch(anchor.contig, start, end), anchor.contig, rev, start)
    return hit if hit.score >= MIN_SCORE else None


def pair_hits(a1: ReadAlignment, a2: ReadAlignment, stats: InsertStats | None):
    """bwa-mem's pairing: best (hit1, hit2, paired?, mapq1, mapq2)."""
    h1, h2 = a1.best, a2.best
    if stats is None or h1 is None or h2 is None:
        return h1, h2, False, hit_mapq(a1, h1) if h1 else 0, hit_mapq(a2, h2) if h2 else 0
    scored = []
    for x in a1.hits:
        for y in a2.hits:
            if x.score < MIN_SCORE or y.score < MIN_SCORE:
                continue
            ins = insert_size(x, y)
            if ins is None or not stats.low <= ins <= stats.high:
                continue
            ns = (ins - stats.avg) / stats.std
            scored.append((x.score + y.score + 0.721 * math.log(max(2.0 * math.erfc(abs(ns) / math.sqrt(2)), 1e-300)) * MATCH, x, y))
    score_un = h1.score + h2.score - PEN_UNPAIRED
    if not scored:
        return h1, h2, False, hit_mapq(a1, h1), hit_mapq(a2, h2)
    scored.sort(key=lambda t: -t[0])
    o, x, y = scored[0]
    if o <= score_un:
        return h1, h2, False, hit_mapq(a1, h1), hit_mapq(a2, h2)
    subo = max(scored[1][0] if len(scored) > 1 else 0, score_un)
    n_sub = sum(1 for s in scored[1:] if s[0] >= subo - 1e-9) if len(scored) > 1 else 0
    q_pe = int(6.02 * (o - subo) / MATCH + 0.499)
    if n_sub > 0:
        q_pe -= int(4.343 * math.log(n_sub + 1) + 0.499)
    q_pe = max(0, min(60, q_pe))
    out = []
    for aln, hit in ((a1, x), (a2, y)):
        q_se = hit_mapq(aln, hit)
        out.append(q_se if q_se > q_pe else (q_pe if q_pe < q_se + 40 else q_se + 40))
    return x, y, True, out[0], out[1]


# ----------------------------------------------------------------------------- SAM
def _xa(aln: ReadAlignment, primary: Hit, names: list[str]) -> str:
    alts = [h for h in aln.hits if h is not primary and h.score >= XA_RATIO * primary.score and h.score >= MIN_SCORE]
    if not alts or len(alts) > XA_MAX:
        return ""
    return "\tXA:Z:" + "".join(f"{names[h.contig]},{'-' if h.reverse else '+'}{h.pos + 1},{h.cigar},{h.nm};" for h in alts)


def sam_record(name: str, seq: str, qual: str, aln: ReadAlignment | None, hit: Hit | None, mapq: int, names: list[str],
               flag: int = 0, mate: Hit | None = None, rg: str = "") -> str:
    """One SAM line. ``flag`` carries the pair bits; for pairs ``mate`` is the mate's hit (None: unmapped)."""
    seq = sanitize(seq)
    qual = qual or "*"
    paired = bool(flag & 1)
    tags = rg
    if hit is None:
        flag |= 4
        if paired and mate is not None:  # placed at its mate
            flag |= 32 if mate.reverse else 0
            rname, pos = names[mate.contig], mate.pos + 1
            return f"{name}\t{flag}\t{rname}\t{pos}\t0\t*\t=\t{pos}\t0\t{seq}\t{qual}\tMC:Z:{mate.cigar}\tAS:i:0\tXS:i:0{tags}\n"
        flag |= 8 if paired else 0
        return f"{name}\t{flag}\t*\t0\t0\t*\t*\t0\t0\t{seq}\t{qual}\tAS:i:0\tXS:i:0{tags}\n"
    if hit.reverse:
        flag |= 16
        seq, qual = reverse_complement(seq), qual[::-1]
    rnext, pnext, tlen, mc = "*", 0, 0, ""
    if paired:
        if mate is None:
            flag |= 8
            rnext, pnext = "=", hit.pos + 1
        else:
            flag |= 32 if mate.reverse else 0
            rnext = "=" if mate.contig == hit.contig else names[mate.contig]
            pnext = mate.pos + 1
            mc = f"\tMC:Z:{mate.cigar}"
            if mate.contig == hit.contig:  # 5' end to 5' end as samtools fixmate sets it (= bwa's for FR pairs)
                tlen = (mate.end if mate.reverse else mate.pos) - (hit.end if hit.reverse else hit.pos)
    xa = _xa(aln, hit, names) if aln is not None else ""
    sub = aln.sub(hit) if aln is not None else 0
    return (
        f"{name}\t{flag}\t{names[hit.contig]}\t{hit.pos + 1}\t{mapq}\t{hit.cigar}\t{rnext}\t{pnext}\t{tlen}\t{seq}\t{qual}"
        f"\tNM:i:{hit.nm}\tMD:Z:{hit.md}{mc}\tAS:i:{hit.score}\tXS:i:{sub}{xa}{tags}\n"
    )


# ----------------------------------------------------------------------------- batches
def align_reads(index: ESAIndex, reads: list[str], top_k: int) -> list[ReadAlignment]:
    """Embed each read once, search both strands' fragments, align every read in its windows.

    Search cascade: reads whose best alignment scores under ``RETRY_FRACTION`` of their length
    after an approximate (HNSW) search are searched again thoroughly and realigned.
    """
    k_min = index.encoder.config.k
    emb = index.encoder.embed_sequences([r if len(r) >= k_min else "N" * k_min for r in reads])
    _, ids = index.search(emb, top_k)
    alns = [align_read(index, r, candidate_windows(index, ids[j])) for j, r in enumerate(reads)]
    if index.has_thorough_search:
        again = [j for j, a in enumerate(alns) if a.best is None or a.best.score < RETRY_FRACTION * len(reads[j])]
        if again:
            _, ids2 = index.search(emb[again], top_k, thorough=True)
            for row, j in enumerate(again):
                windows = candidate_windows(index, np.concatenate([ids[j], ids2[row]]))
                alns[j] = align_read(index, reads[j], windows)
    return alns


def _strip_mate_suffix(name: str) -> str:
    return name[:-2] if name.endswith(("/1", "/2")) else name


def align_batch(index: ESAIndex, batch: list, paired: bool, top_k: int, rg: str = "", state: dict | None = None) -> tuple[str, dict]:
    """SAM text and counts for one batch (single reads, or pairs as ((name, seq, qual), (name, seq, qual)))."""
    names = index.contig_names
    out: list[str] = []
    stats = {"reads": 0, "mapped": 0, "fast": 0, "pairs": 0, "proper": 0, "rescued": 0}
    if not paired:
        alns = align_reads(index, [s for _, s, _ in batch], top_k)
        for (name, seq, qual), aln in zip(batch, alns):
            hit = aln.best
            out.append(sam_record(name, seq, qual, aln, hit, hit_mapq(aln, hit) if hit else 0, names, rg=rg))
            stats["reads"] += 1
            stats["mapped"] += hit is not None
            stats["fast"] += aln.fast
        return "".join(out), stats
    alns = align_reads(index, [r[1] for pair in batch for r in pair], top_k)
    pairs = list(zip(alns[0::2], alns[1::2]))
    state = state if state is not None else {}
    ins = estimate_insert(pairs) or state.get("insert")
    if ins is not None:
        state["insert"] = ins
    for ((n1, s1, q1), (n2, s2, q2)), (a1, a2) in zip(batch, pairs):
        h1, h2, proper, m1, m2 = pair_hits(a1, a2, ins)
        if not proper and ins is not None:  # mate rescue: SW the weaker end near the confident one
            for anchor_aln, anchor, other_aln, other_seq in ((a1, h1, a2, s2), (a2, h2, a1, s1)):
                if anchor is not None and hit_mapq(anchor_aln, anchor) >= 20:
                    rescued = rescue_mate(index, anchor, other_seq, ins)
                    if rescued is not None and not any(_same_place(h, rescued) for h in other_aln.hits):
                        other_aln.hits = _distinct(other_aln.hits + [rescued])
                        stats["rescued"] += 1
                    break
            h1, h2, proper, m1, m2 = pair_hits(a1, a2, ins)
        name = _strip_mate_suffix(n1)
        if _strip_mate_suffix(n2) != name:
            raise InputError(f"read names of a pair differ: {n1} and {n2} (are the two files in the same order?)")
        base = 1 | (2 if proper else 0)
        out.append(sam_record(name, s1, q1, a1, h1, m1, names, base | 64, h2, rg=rg))
        out.append(sam_record(name, s2, q2, a2, h2, m2, names, base | 128, h1, rg=rg))
        stats["reads"] += 2
        stats["mapped"] += (h1 is not None) + (h2 is not None)
        stats["fast"] += a1.fast + a2.fast
        stats["pairs"] += 1
        stats["proper"] += proper
    if ins is not None:
        stats["insert_avg"], stats["insert_std"], stats["insert_low"], stats["insert_high"] = ins.avg, ins.std, ins.low, ins.high
    return "".join(out), stats


# ----------------------------------------------------------------------------- reads in, worker processes
def read_batches(reads1: str, reads2: str | None, interleaved: bool, batch_size: int):
    """Batches of reads (single) or of pairs (two files, or one interleaved file)."""
    if reads2 is None and not interleaved:
        batch = []
        for rec in iter_fastq(reads1):
            batch.append(rec)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    if reads2 is not None:
        it1, it2 = iter_fastq(reads1), iter_fastq(reads2)
        pairs = _zip_strict(it1, it2, reads1, reads2)
    else:
        pairs = _interleaved(iter_fastq(reads1), reads1)
    batch = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) == max(1, batch_size // 2):
            yield batch
            batch = []
    if batch:
        yield batch


def _zip_strict(it1, it2, path1, path2):
    n = 0
    while True:
        r1, r2 = next(it1, None), next(it2, None)
        if r1 is None and r2 is None:
            return
        n += 1
        if r1 is None or r2 is None:
            short = path1 if r1 is None else path2
            raise InputError(f"{short}: ends at record {n}, before its mate file (the two files must hold the same reads)")
        yield r1, r2


def _interleaved(it, path):
    n = 0
    for r1 in it:
        n += 1
        r2 = next(it, None)
        if r2 is None:
            raise InputError(f"{path}: record {n}: interleaved file (-p) has an odd number of records")
        n += 1
        yield r1, r2


_WORKER: dict = {}


def _worker_init(index_dir: str, top_k: int, paired: bool, rg: str) -> None:
    import faiss

    if "torch" in sys.modules:  # a Transformer encoder; a k-mer-bag one runs in numpy
        sys.modules["torch"].set_num_threads(1)
    faiss.omp_set_num_threads(1)
    index = _WORKER.get("preloaded") or load_index(index_dir)
    _WORKER.update(index=index, top_k=top_k, paired=paired, rg=rg, state={})


def _worker_run(batch):
    w = _WORKER
    return align_batch(w["index"], batch, w["paired"], w["top_k"], w["rg"], w["state"])


def parse_read_group(text: str | None) -> tuple[str, str]:
    """bwa's ``-R``: an @RG header line (``\\t`` may be written literally) -> (header line, RG tag)."""
    if not text:
        return "", ""
    line = text.replace("\\t", "\t")
    fields = line.split("\t")
    ids = [f[3:] for f in fields[1:] if f.startswith("ID:")]
    if fields[0] != "@RG" or not ids or not ids[0]:
        raise InputError(f"read group must look like '@RG\\tID:name\\tSM:sample', got {text!r}")
    return line + "\n", f"\tRG:Z:{ids[0]}"


def align_fastq(
    index_dir: str | Path,
    reads_path: str | Path,
    out_path: str | Path | None = None,
    reads2_path: str | Path | None = None,
    interleaved: bool = False,
    top_k: int = 10,
    threads: int = 2,
    batch_size: int = 1024,
    read_group: str | None = None,
    progress: bool = True,
    command_line: str | None = None,
) -> dict:
    """Align FASTQ reads (single, two mate files, or interleaved pairs) and write SAM; returns run statistics.

    ``out_path`` None or ``-`` streams SAM to standard output; a file is written whole or not at all.
    Work is split over ``threads`` worker processes, each with its own copy of the store and a
    memory-mapped reference; at most ``2 x threads`` batches are in flight, so memory does not grow
    with the number of reads.
    """
    from contextlib import nullcontext

    from tqdm import tqdm

    meta = read_meta(index_dir)
    if reads2_path is not None and interleaved:
        raise InputError("give either two mate files or one interleaved file (-p), not both")
    if reads2_path is not None and "-" in (str(reads_path), str(reads2_path)):
        raise InputError("with two mate files neither can be '-' (stdin)")
    rg_header, rg_tag = parse_read_group(read_group)
    paired = reads2_path is not None or interleaved
    command_line = command_line or " ".join(shlex.quote(a) for a in sys.argv)
    t0 = time.time()
    totals: dict = {"reads": 0, "mapped": 0, "fast": 0, "pairs": 0, "proper": 0, "rescued": 0}
    inserts = []
    to_stdout = out_path is None or str(out_path) == "-"
    bar = tqdm(disable=not progress, desc="esa align", unit="read", file=sys.stderr)
    batches = read_batches(str(reads_path), None if reads2_path is None else str(reads2_path), interleaved, batch_size)
    first = next(batches, None)  # the first records are read (and checked) before any SAM is written
    batches = itertools.chain([first] if first else [], batches)
    header = sam_header(dict(zip(meta["contigs"], meta["contig_lengths"])), "seqverse-esa", "0.2.0", command_line)
    if rg_header:
        header = header.replace("\n@PG", "\n" + rg_header.rstrip("\n") + "\n@PG", 1)
    pool = None
    if threads > 1:
        import multiprocessing

        # fork before this process has touched torch or FAISS; each worker loads the index once
        # A k-mer-bag index (numpy + FAISS, no torch) is loaded once here and shared by the forked
        # workers (copy-on-write); a Transformer encoder's index is loaded by each worker, so no
        # torch state crosses the fork.
        if json.loads((Path(index_dir) / "encoder" / "config.json").read_text()).get("n_layers", 2) == 0:
            import parasail  # noqa: F401  (imported once, before the fork)

            _WORKER["preloaded"] = load_index(index_dir)
        pool = multiprocessing.get_context("fork").Pool(threads, _worker_init, (str(index_dir), top_k, paired, rg_tag))
    else:
        _worker_init(str(index_dir), top_k, paired, rg_tag)
    try:
        with (nullcontext(sys.stdout) if to_stdout else atomic_output(out_path)) as out:
            out.write(header)

            def take(result):
                text, stats = result
                out.write(text)
                for key in totals:
                    totals[key] += stats[key]
                if "insert_avg" in stats:
                    inserts.append((stats["insert_avg"], stats["insert_std"], stats["insert_low"], stats["insert_high"]))
                bar.update(stats["reads"])

            if pool is None:
                for batch in batches:
                    take(_worker_run(batch))
            else:
                pending: deque = deque()
                for batch in batches:
                    pending.append(pool.apply_async(_worker_run, (batch,)))
                    if len(pending) >= 2 * threads:
                        take(pending.popleft().get())
                while pending:
                    take(pending.popleft().get())
            out.flush()
    finally:
        _WORKER.pop("preloaded", None)
        if pool is not None:
            pool.terminate()
            pool.join()
        bar.close()
    seconds = time.time() - t0
    result = dict(totals)
    if not paired:
        for key in ("pairs", "proper", "rescued"):
            result.pop(key)
    elif inserts:
        a = np.array(inserts)
        result["insert_avg"], result["insert_std"] = round(float(a[:, 0].mean()), 1), round(float(a[:, 1].mean()), 1)
        result["insert_low"], result["insert_high"] = int(a[:, 2].min()), int(a[:, 3].max())
    result["seconds"] = round(seconds, 2)
    result["reads_per_s"] = round(result["reads"] / max(seconds, 1e-9), 1)
    return result
