"""Scoring alignments against simulator truth (ART's ``-sam`` output), as minimap2's ``paftools mapeval``.

A read is correct when its primary alignment is on the true contig and strand and its
clip-adjusted leftmost position (POS minus the leading soft/hard clip) is within ``tolerance``
bases of the true leftmost position. ART writes the true alignment of every read with no clips;
its RNAME is the whole FASTA title line, so only the first word is the contig name. Unmapped
reads count as not correct. ``mapq_table`` gives, per MAPQ threshold, the reads mapped at or above
it and the error rate among them (cumulative, highest MAPQ first, like mapeval).
"""

from __future__ import annotations

import re
from pathlib import Path

from seqverse.core.clikit import InputError
from seqverse.genomics.io import iter_lines

_LEAD_CLIP = re.compile(r"^(\d+)[SH]")
MAPQ_THRESHOLDS = (60, 50, 40, 30, 20, 10, 3, 1, 0)


def read_truth(path: str | Path) -> dict[str, tuple[str, bool, int]]:
    """ART ``-sam`` truth -> ``{read name: (contig, reverse, 0-based leftmost position)}``."""
    truth = {}
    for line_no, line in iter_lines(path):
        if line.startswith("@") or not line.strip():
            continue
        f = line.rstrip("\n").split("\t")
        if len(f) < 11:
            raise InputError(f"{path}: line {line_no}: SAM needs 11 tab-separated fields, found {len(f)}")
        try:
            flag, pos = int(f[1]), int(f[3])
        except ValueError:
            raise InputError(f"{path}: line {line_no}: FLAG and POS must be integers") from None
        if flag & 0x900:
            continue
        truth[_read_key(f[0], flag)] = ((f[2].split() or [""])[0], bool(flag & 16), pos - 1 - _clip(f[5]))
    if not truth:
        raise InputError(f"{path}: no alignments in the truth SAM")
    return truth


def _read_key(qname: str, flag: int) -> str:
    """A read's identity: its name, plus /1 or /2 for the ends of a pair (by FLAG 0x40/0x80)."""
    name = qname[:-2] if qname.endswith(("/1", "/2")) else qname
    return name + ("/1" if flag & 64 else "/2" if flag & 128 else "")


def _clip(cigar: str) -> int:
    m = _LEAD_CLIP.match(cigar)
    return int(m.group(1)) if m else 0


def read_primary(path: str | Path) -> dict[str, tuple[str, bool, int, int] | None]:
    """Primary alignment per read (per end of a pair) of a SAM file: ``(contig, reverse, clip-adjusted start, MAPQ)`` or None."""
    out = {}
    for line_no, line in iter_lines(path):
        if line.startswith("@") or not line.strip():
            continue
        f = line.split("\t", 6)
        if len(f) < 6:
            raise InputError(f"{path}: line {line_no}: not a SAM alignment line")
        try:
            flag, pos, mapq = int(f[1]), int(f[3]), int(f[4])
        except ValueError:
            raise InputError(f"{path}: line {line_no}: FLAG, POS and MAPQ must be integers") from None
        if flag & 0x900:  # secondary / supplementary
            continue
        out[_read_key(f[0], flag)] = None if flag & 4 else (f[2], bool(flag & 16), pos - 1 - _clip(f[5]), mapq)
    return out


def evaluate(truth_path: str | Path, sam_path: str | Path, tolerance: int = 20) -> dict:
    """Accuracy, error rate at MAPQ >= 20, and the mapeval-style table of ``sam_path`` against the truth."""
    truth = read_truth(truth_path)
    calls = read_primary(sam_path)
    missing = [n for n in truth if n not in calls]
    if len(missing) == len(truth):
        raise InputError(f"{sam_path}: none of the {len(truth)} truth reads is in this SAM file")
    rows = []  # (mapq, correct) of mapped reads
    for name, (contig, rev, start) in truth.items():
        call = calls.get(name)
        if call is None:
            continue
        rows.append((call[3], call[0] == contig and call[1] == rev and abs(call[2] - start) <= tolerance))
    n = len(truth)
    correct = sum(c for _, c in rows)
    q20 = [c for q, c in rows if q >= 20]
    table = []
    for t in MAPQ_THRESHOLDS:
        at = [c for q, c in rows if q >= t]
        table.append(
            {
                "mapq>=": t,
                "mapped": len(at),
                "wrong": len(at) - sum(at),
                "fraction_of_reads": round(len(at) / n, 5),
                "error_rate": round((len(at) - sum(at)) / len(at), 6) if at else 0.0,
            }
        )
    return {
        "reads": n,
        "mapped": len(rows),
        "correct": correct,
        "accuracy": round(correct / n, 6),
        "mapq20_reads": len(q20),
        "mapq20_wrong": len(q20) - sum(q20),
        "mapq20_error_rate": round((len(q20) - sum(q20)) / len(q20), 6) if q20 else 0.0,
        "missing_from_sam": len(missing),
        "mapq_table": table,
    }


def retrieval_recall(index_dir: str | Path, reads_path: str | Path, truth_path: str | Path, ks=(1, 5, 10, 20, 50),
                     batch_size: int = 512, threads: int = 2, index=None) -> dict:
    """Recall@k of the search step alone: the truth lies wholly inside one of the top-k fragment vectors, on its strand.

    The read is embedded once and searched against both strands' fragment vectors together, as
    ``esa align`` does; ``recall@1`` is DNA-ESA's own evaluation (embedding top-1, no alignment;
    Holur et al. 2023, Sec. 4). ``recall@k_fwd`` / ``recall@k_rev`` split it by the read's true
    strand. Reads from exact repeats may be retrieved at another copy; they count as missed here,
    as they would for any top-1 placement.
    """
    import faiss
    import torch

    from seqverse.genomics.esa.index import load_index
    from seqverse.genomics.io import iter_fastq

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    index = index or load_index(index_dir)
    truth = read_truth(truth_path)
    names = index.contig_names
    kmax = max(ks)
    hits = {(k, s): 0 for k in ks for s in (False, True)}
    count = {False: 0, True: 0}
    batch: list[tuple[str, str]] = []

    def first_hit(ids, contig, strand, start, length):
        for r, v in enumerate(ids.tolist()):
            if v < 0:
                continue
            f = v >> 1
            fs = int(index.frag_start[f])
            if (names[index.frag_contig[f]] == contig and bool(v & 1) == strand
                    and fs <= start and start + length <= fs + int(index.frag_len[f]) + 5):
                return r
        return None

    def flush():
        seqs = [s for _, s in batch]
        k_min = index.encoder.config.k
        _, ids = index.search(index.encoder.embed_sequences([s if len(s) >= k_min else "N" * k_min for s in seqs]), kmax)
        for j, (name, seq) in enumerate(batch):
            contig, strand, start = truth[name]
            first = first_hit(ids[j], contig, strand, start, len(seq))
            count[strand] += 1
            for k in ks:
                hits[(k, strand)] += first is not None and first < k
        batch.clear()

    for name, seq, _ in iter_fastq(reads_path):
        if name not in truth:
            raise InputError(f"{reads_path}: read {name} is not in the truth file {truth_path}")
        batch.append((name, seq))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    n = count[False] + count[True]
    out = {"reads": n}
    out.update({f"recall@{k}": round((hits[(k, False)] + hits[(k, True)]) / n, 6) for k in ks})
    for strand, label in ((False, "fwd"), (True, "rev")):
        out.update({f"recall@{k}_{label}": round(hits[(k, strand)] / max(count[strand], 1), 6) for k in ks})
    return out
