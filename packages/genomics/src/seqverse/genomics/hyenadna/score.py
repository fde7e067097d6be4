"""Log-likelihood of DNA under the language model, windowed over long records, and variant effects.

Every base is scored given the bases before it, with up to the model's full context: a record is
cut into windows of ``context`` tokens (``[BOS]`` + bases); the first window scores its bases from
the start, each later window advances by ``stride`` (half a window by default) and scores only its
last ``stride`` bases, so every base after the first window sees at least ``context - stride`` bases
before it. ``score_ids_ref`` computes the same numbers one base at a time and is the test's reference.

Two conventions for the window start: seqverse models are trained with ``[BOS]`` before each
window, so every base is scored (``bos=True``); the official HyenaDNA checkpoints were pretrained on
raw windows (input ``w[:-1]``, target ``w[1:]``, no ``[BOS]``), so there the first base of a record
is context only and is not scored (``bos=False``).

A variant's effect is the log-likelihood ratio ``LL(alt) - LL(ref)`` of the two haplotypes over
the same reference span, ``flank`` bases either side of the variant (HyenaDNA Sec. 4; Benegas et
al. GPN): the same number as writing both segments to FASTA and scoring them as records. For an
indel the two sums cover different numbers of bases (the inserted or deleted ones), so each row
also has ``llr_flanks``: the difference over the flanking reference bases only, the same bases
in both haplotypes (their likelihood given the variant before them), comparable across indel sizes.
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


def _spans(n: int, context: int, stride: int, bos: bool) -> list[tuple[int, int, int]]:
    """Windows ``(start, end, first_scored)``: with ``[BOS]`` a window of ``context`` inputs predicts
    ``context`` bases; without, ``context`` inputs predict the ``context`` bases after the first one,
    and base 0 is never scored."""
    if bos:
        return windows(n, context, stride)
    if n < 2:
        return []
    return [(s, e, max(first, 1)) for s, e, first in windows(n, context + 1, min(stride, context))]


@torch.no_grad()
def score_ids(model, ids: np.ndarray, context: int | None = None, stride: int | None = None, batch_size: int = 16,
              progress=None, bos: bool = True) -> np.ndarray:
    """Natural-log probability of each base of ``ids`` (int64 nucleotide ids) under ``model``: ``[n]``
    float64. With ``bos=False`` (the official convention) base 0 is not scored and is ``nan``."""
    was_training = model.training
    model.eval()
    context = context or model.config.max_seq_len
    stride = stride or max(1, context // 2)
    n = len(ids)
    logp = np.zeros(n, dtype=np.float64)
    if not bos and n:
        logp[0] = np.nan
    spans = _spans(n, context, stride, bos)
    device = next(model.parameters()).device
    try:
        for i in range(0, len(spans), batch_size):
            group = spans[i : i + batch_size]
            for length in sorted({e - s for s, e, _ in group}):  # equal lengths batch together
                same = [g for g in group if g[1] - g[0] == length]
                if bos:  # [BOS] + w[:-1] predicts w
                    inp = np.stack([np.concatenate([[BOS], ids[s : e - 1]]) for s, e, _ in same])
                    tgt, offset = np.stack([ids[s:e] for s, e, _ in same]), 0
                else:  # w[:-1] predicts w[1:]
                    inp = np.stack([ids[s : e - 1] for s, e, _ in same])
                    tgt, offset = np.stack([ids[s + 1 : e] for s, e, _ in same]), 1
                lp = torch.log_softmax(model(torch.from_numpy(inp).to(device)), dim=-1)
                lp = lp.gather(-1, torch.from_numpy(tgt).to(device)[..., None])[..., 0].double().cpu().numpy()
                for row, (s, e, first) in zip(lp, same):
                    logp[first:e] = row[first - s - offset :]
            if progress is not None:
                progress.update(sum(e - f for _, e, f in group))
    finally:
        model.train(was_training)
    return logp


@torch.no_grad()
def score_ids_ref(model, ids: np.ndarray, context: int | None = None, stride: int | None = None,
                  bos: bool = True) -> np.ndarray:
    """Reference for :func:`score_ids`: each base scored by its own forward pass over exactly the
    context the windows give it (``[BOS]`` + the bases from its window's start, or without ``[BOS]``
    just those bases)."""
    model.eval()
    context = context or model.config.max_seq_len
    stride = stride or max(1, context // 2)
    logp = np.zeros(len(ids), dtype=np.float64)
    if not bos and len(ids):
        logp[0] = np.nan
    for s, e, first in _spans(len(ids), context, stride, bos):
        for t in range(first, e):
            prefix = np.concatenate([[BOS], ids[s:t]]) if bos else ids[s:t]
            logp[t] = torch.log_softmax(model(torch.from_numpy(prefix)[None])[0, -1], dim=-1)[ids[t]].item()
    return logp


def record_score(name: str, logp: np.ndarray) -> dict:
    """Totals over the scored bases (``nan`` marks an unscored first base, see ``bos``)."""
    scored = logp[~np.isnan(logp)]
    ll = float(scored.sum())
    return {"id": name, "length": len(logp), "scored_bases": len(scored), "log_likelihood": ll,
            "bits_per_base": -ll / len(scored) / LN2 if len(scored) else float("nan")}


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


def is_vcf(path: str) -> bool:
    """A VCF/BCF by its name or its first line (``##fileformat=VCF``)."""
    if str(path).endswith((".vcf", ".vcf.gz", ".bcf")):
        return True
    from seqverse.genomics.io import open_text

    try:
        with open_text(path) as handle:
            return handle.readline(64).startswith("##fileformat=VCF")
    except (UnicodeDecodeError, OSError, EOFError):
        return False


def read_vcf(path: str) -> list[Variant]:
    """Variants of a VCF/BCF read by pysam (htslib); several ALTs give several variants, records with
    no ALT (``.``) are skipped, symbolic ALTs (``<DEL>``) are refused. Errors name the file and record."""
    import pysam

    pysam.set_verbosity(0)  # htslib's own stderr lines; the error below names the file and record
    out, n = [], 0
    try:
        with pysam.VariantFile(str(path)) as vcf:
            for n, rec in enumerate(vcf, 1):
                label = f"{path}: record {n} ({rec.chrom}:{rec.pos})"
                for alt in rec.alts or ():
                    if alt in (".", "*"):
                        continue
                    if alt.startswith("<") or "[" in alt or "]" in alt:
                        raise InputError(f"{label}: symbolic ALT {alt!r} is not supported; give the bases")
                    out.append(Variant(rec.chrom, rec.pos, rec.ref.upper(), alt.upper(), label))
    except NotImplementedError:  # htslib cannot seek in plain gzip
        raise InputError(f"{path}: compressed with plain gzip; recompress it with bgzip (htslib) or give the .vcf") from None
    except (OSError, ValueError) as err:
        where = f"record {n + 1}" + (f" (after record {n})" if n else "")
        raise InputError(f"{path}: {where}: not valid VCF ({err})") from None
    return out


def parse_variants(path: str) -> list[Variant]:
    """Variants from a VCF (through pysam, :func:`read_vcf`) or from ``CHROM:POS:REF>ALT`` lines.
    Errors name the file and line or record."""
    from seqverse.genomics.io import open_text

    if is_vcf(path):
        out = read_vcf(path)
    else:
        out = []
        with open_text(path) as handle:
            try:
                for lineno, line in enumerate(handle, 1):
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    label = f"{path}:{lineno}"
                    try:
                        chrom, pos, change = line.rsplit(":", 2)
                        ref, alt = change.split(">")
                        out.append(Variant(chrom, int(pos), ref.upper(), alt.upper(), label))
                    except ValueError:
                        raise InputError(f"{label}: expected CHROM:POS:REF>ALT (or a VCF with its ##fileformat header), "
                                         f"got {line[:60]!r}") from None
            except (UnicodeDecodeError, EOFError, OSError) as err:
                raise InputError(f"{path}: not a text file of variants ({err})") from None
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
    if not variant.ref or not variant.alt:
        raise InputError(f"{variant.label}: variant {variant.name}: empty REF or ALT")
    CharacterTokenizer().encode(variant.alt, record=f"{variant.label}: variant {variant.name} ALT")
    lo, hi = max(0, i - flank), min(len(seq), i + len(variant.ref) + flank)
    ref_seg = seq[lo:hi]
    alt_seg = seq[lo:i] + variant.alt + seq[i + len(variant.ref) : hi]
    return ref_seg, alt_seg


def _flanks(logp: np.ndarray, left: int, right: int) -> float:
    """Sum over the first ``left`` and the last ``right`` bases (an unscored first base is nan)."""
    return float(np.nansum(logp[:left]) + (logp[len(logp) - right :].sum() if right else 0.0))


def score_variants(model, variants: list[Variant], reference: dict[str, str], flank: int | None = None,
                   context: int | None = None, bos: bool = True) -> list[dict]:
    """Per variant (nats): ``ref_log_likelihood``/``alt_log_likelihood`` of the two haplotypes over
    the same reference span and their difference ``llr``; ``llr_flanks``, the difference over the
    flanking reference bases only (the same bases in both; see the module docstring)."""
    tok = CharacterTokenizer()
    flank = model.config.max_seq_len if flank is None else flank
    out = []
    for v in variants:
        ref_seg, alt_seg = variant_segments(v, reference, flank)
        left = min(flank, v.pos - 1)  # bases before the variant in both segments
        right = len(ref_seg) - left - len(v.ref)  # bases after it, the same in both
        ref_lp = score_ids(model, tok.encode(ref_seg), context, bos=bos)
        alt_lp = score_ids(model, tok.encode(alt_seg), context, bos=bos)

        ll_ref, ll_alt = float(np.nansum(ref_lp)), float(np.nansum(alt_lp))
        out.append({"id": v.name, "ref_log_likelihood": ll_ref, "alt_log_likelihood": ll_alt, "llr": ll_alt - ll_ref,
                    "llr_flanks": float(_flanks(alt_lp, left, right) - _flanks(ref_lp, left, right))})
    return out
