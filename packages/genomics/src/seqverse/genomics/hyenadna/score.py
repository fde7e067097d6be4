"""Log-likelihood of DNA under the language model, windowed over long records, and variant effects.

Every base is scored given the bases before it, with up to the model's full context: a record is
cut into windows of ``context`` tokens (``[BOS]`` + bases); the first window scores its bases from
the start, each later window advances by ``stride`` (half a window by default) and scores only its
last ``stride`` bases, so every base after the first window sees at least ``context - stride`` bases
before it. ``score_ids_ref`` computes the same numbers one base at a time and is the test's reference.

A variant's effect is the log-likelihood ratio ``LL(alt) - LL(ref)`` of the two haplotypes over
the segment ``flank`` bases either side of the variant (HyenaDNA Sec. 4; Benegas et al. GPN): the
same number as writing both segments to FASTA and scoring them as records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from seqverse.core.clikit import InputError
from seqverse.genomics.hyenadna.tokenizer import BOS, CharacterTokenizer

LN2 = math.log(2)


def windows(n: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """``(start, end, first_scored)`` of each window over ``n`` bases (window input is
    ``[BOS] + bases[start:end-1]``, predicting ``bases[start:end]``; scored from ``first_scored``)."""
    if not 0 < stride <= context:
        raise ValueError(f"stride must be in 1..context ({context}), got {stride}")
    out = [(0, min(context, n), 0)]
    done = out[0][1]
    while done < n:
        end = min(done + stride, n)
        out.append((max(0, end - context), end, done))
        done = end
    return out


@torch.no_grad()
def score_ids(model, ids: np.ndarray, context: int | None = None, stride: int | None = None, batch_size: int = 16, progress=None) -> np.ndarray:
    """Natural-log probability of each base of ``ids`` (int64 nucleotide ids) under ``model``: ``[n]`` float64."""
    was_training = model.training
    model.eval()
    context = context or model.config.max_seq_len
    stride = stride or max(1, context // 2)
    n = len(ids)
    logp = np.zeros(n, dtype=np.float64)
    spans = windows(n, context, stride)
    device = next(model.parameters()).device
    try:
        for i in range(0, len(spans), batch_size):
            group = spans[i : i + batch_size]
            for length in sorted({e - s for s, e, _ in group}):  # equal lengths batch together
                same = [g for g in group if g[1] - g[0] == length]
                inp = np.stack([np.concatenate([[BOS], ids[s : e - 1]]) for s, e, _ in same])
                tgt = np.stack([ids[s:e] for s, e, _ in same])
                lp = torch.log_softmax(model(torch.from_numpy(inp).to(device)), dim=-1)
                lp = lp.gather(-1, torch.from_numpy(tgt).to(device)[..., None])[..., 0].double().cpu().numpy()
                for row, (s, e, first) in zip(lp, same):
                    logp[first:e] = row[first - s :]
            if progress is not None:
                progress.update(sum(e - f for _, e, f in group))
    finally:
        model.train(was_training)
    return logp


@torch.no_grad()
def score_ids_ref(model, ids: np.ndarray, context: int | None = None, stride: int | None = None) -> np.ndarray:
    """Reference for :func:`score_ids`: each base scored by its own forward pass over exactly the
    context the windows give it (``[BOS]`` + the bases from its window's start)."""
    model.eval()
    context = context or model.config.max_seq_len
    stride = stride or max(1, context // 2)
    logp = np.zeros(len(ids), dtype=np.float64)
    for s, e, first in windows(len(ids), context, stride):
        for t in range(first, e):
            inp = torch.from_numpy(np.concatenate([[BOS], ids[s:t]]))[None]
            logp[t] = torch.log_softmax(model(inp)[0, -1], dim=-1)[ids[t]].item()
    return logp


def record_score(name: str, logp: np.ndarray) -> dict:
    ll = float(logp.sum())
    return {"id": name, "length": len(logp), "log_likelihood": ll, "bits_per_base": -ll / len(logp) / LN2}


@dataclass
class Variant:
    chrom: str
    pos: int  # 1-based, as VCF
    ref: str
    alt: str
    label: str  # where it came from, for error messages ("file:line")

    @property
    def name(self) -> str:
        return f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"


def parse_variants(path: str) -> list[Variant]:
    """Variants from a VCF (CHROM POS ID REF ALT ...; several ALTs give several variants) or from
    ``CHROM:POS:REF>ALT`` lines. Errors name the file and line."""
    from seqverse.genomics.hyenadna.data import open_text

    out = []
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            label = f"{path}:{lineno}"
            if "\t" in line:
                cols = line.split("\t")
                if len(cols) < 5 or not cols[1].isdigit():
                    raise InputError(f"{label}: not a VCF data line (need CHROM POS ID REF ALT)")
                for alt in cols[4].split(","):
                    out.append(Variant(cols[0], int(cols[1]), cols[3].upper(), alt.upper(), label))
            else:
                try:
                    chrom, pos, change = line.strip().rsplit(":", 2)
                    ref, alt = change.split(">")
                    out.append(Variant(chrom, int(pos), ref.upper(), alt.upper(), label))
                except ValueError as err:
                    raise InputError(f"{label}: expected CHROM:POS:REF>ALT, got {line.strip()!r}") from err
    if not out:
        raise InputError(f"{path}: no variants")
    return out


def variant_segments(variant: Variant, reference: dict[str, str], flank: int) -> tuple[str, str]:
    """Reference and alternative haplotype over ``flank`` bases either side; checks REF against the reference."""
    seq = reference.get(variant.chrom)
    if seq is None:
        raise InputError(f"{variant.label}: variant {variant.name}: chromosome {variant.chrom!r} is not in the reference FASTA")
    i = variant.pos - 1
    if i < 0 or i + len(variant.ref) > len(seq):
        raise InputError(f"{variant.label}: variant {variant.name}: position outside {variant.chrom} (length {len(seq)})")
    if seq[i : i + len(variant.ref)].upper() != variant.ref:
        raise InputError(
            f"{variant.label}: variant {variant.name}: REF {variant.ref!r} does not match the reference "
            f"{seq[i : i + len(variant.ref)]!r} at {variant.chrom}:{variant.pos}"
        )
    CharacterTokenizer().encode(variant.alt, record=f"{variant.label}: variant {variant.name} ALT")
    lo, hi = max(0, i - flank), min(len(seq), i + len(variant.ref) + flank)
    ref_seg = seq[lo:hi]
    alt_seg = seq[lo:i] + variant.alt + seq[i + len(variant.ref) : hi]
    return ref_seg, alt_seg


def score_variants(model, variants: list[Variant], reference: dict[str, str], flank: int | None = None, context: int | None = None) -> list[dict]:
    """``{"id", "ref_log_likelihood", "alt_log_likelihood", "llr"}`` (nats) per variant."""
    tok = CharacterTokenizer()
    flank = model.config.max_seq_len if flank is None else flank
    out = []
    for v in variants:
        ref_seg, alt_seg = variant_segments(v, reference, flank)
        ll_ref = float(score_ids(model, tok.encode(ref_seg), context).sum())
        ll_alt = float(score_ids(model, tok.encode(alt_seg), context).sum())
        out.append({"id": v.name, "ref_log_likelihood": ll_ref, "alt_log_likelihood": ll_alt, "llr": ll_alt - ll_ref})
    return out
