"""Fine-tuning tasks: a directory of labelled sequences, and builders for two real tasks.

A task directory holds ``train.csv`` and ``test.csv`` (columns ``id,sequence,label``) or
``train.fa``/``test.fa`` (label in the header: ``>id label=coding``), plus an optional
``task.json`` (``{"kind": "sequence" | "token", "labels": [...]}``). For ``kind: token`` the label
column is a string with one digit per base.

Builders (HyenaDNA Sec. 4.2 evaluates on such genomic classification benchmarks):

- ``build_coding_task``: coding vs intergenic 500 bp windows of the HS11286 chromosome, from
  ``prodigal`` gene calls. Training windows come from the first 80% of the chromosome, test windows
  from the held-out last 20% (the language model's split). A window is ``coding`` when every base is
  inside a predicted gene and ``intergenic`` when at most ``max_coding`` of it is.
- ``build_capsule_task``: *Klebsiella* vs *Acinetobacter* capsule (K) locus fragments from the
  Kaptive reference GenBank files, split by locus (no locus has fragments on both sides).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError
from seqverse.genomics.hyenadna.data import read_records
from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer

KLEBSIELLA_GENOME = "/usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz"
KAPTIVE = Path("/usr/share/kaptive/reference_database")


@dataclass
class Split:
    ids: list[str]
    sequences: list[str]
    labels: list  # class index per record, or an int array per base for token tasks


@dataclass
class Task:
    name: str
    kind: str
    label_names: list[str]
    train: Split
    test: Split


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "sequence", "label"])
        w.writerows(rows)
    tmp.replace(path)


def _read_split(directory: Path, part: str, kind: str, label_names: list[str] | None) -> tuple[list, list, list]:
    tok = CharacterTokenizer()
    csv_path, fa_path = directory / f"{part}.csv", directory / f"{part}.fa"
    rows = []
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"sequence", "label"} <= set(reader.fieldnames):
                raise InputError(f"{csv_path}: need a header with columns sequence and label (and optionally id)")
            for lineno, row in enumerate(reader, 2):
                rows.append((row.get("id") or f"{csv_path}:{lineno}", row["sequence"], row["label"], f"{csv_path}:{lineno}"))
    elif fa_path.is_file():
        from Bio import SeqIO

        for rec in SeqIO.parse(str(fa_path), "fasta"):
            label = dict(kv.split("=", 1) for kv in rec.description.split()[1:] if "=" in kv).get("label")
            if label is None:
                raise InputError(f"{fa_path}: record {rec.id!r} has no label=... in its header")
            rows.append((rec.id, str(rec.seq), label, f"{fa_path}: record {rec.id!r}"))
    else:
        raise InputError(f"{directory}: no {part}.csv or {part}.fa")
    if not rows:
        raise InputError(f"{directory}: {part} split is empty")
    ids, seqs, labels = [], [], []
    for rid, seq, label, where in rows:
        if not seq:
            raise InputError(f"{where}: empty sequence")
        tok.encode(seq, record=where)
        if kind == "token":
            if len(label) != len(seq) or not label.isdigit():
                raise InputError(f"{where}: token labels must be one digit per base ({len(seq)} digits)")
            labels.append(np.frombuffer(label.encode(), dtype=np.uint8).astype(np.int64) - 48)
        else:
            labels.append(label)
        ids.append(rid)
        seqs.append(seq)
    return ids, seqs, labels


def record_group(record_id: str) -> str:
    """The group a record belongs to: its id up to the last ``:`` (``Klebsiella:KL1:301-800`` -> ``Klebsiella:KL1``,
    the capsule locus; ``chrom:1-500`` -> ``chrom``)."""
    return record_id.rsplit(":", 1)[0]


def validation_split(split: Split, fraction: float = 0.2, seed: int = 0, group=record_group) -> tuple[Split, Split]:
    """Carve a validation split out of ``split`` (a task's *training* split) by group: every group
    (e.g. capsule locus) lands wholly on one side, ``fraction`` of the groups of each label on the
    validation side. Returns ``(train, val)``; record order is kept."""
    rng = np.random.default_rng(seed)
    groups = [group(i) for i in split.ids]
    by_label: dict = {}
    for g, lab in zip(groups, split.labels):
        by_label.setdefault(lab if not isinstance(lab, np.ndarray) else 0, {})[g] = None
    held = set()
    for lab in sorted(by_label):
        names = sorted(by_label[lab])
        n = int(round(len(names) * fraction))
        held.update(names[i] for i in rng.permutation(len(names))[:n])
    if not held or len(held) == len(set(groups)):
        raise ValueError(f"cannot carve a {fraction:.0%} validation split from {len(set(groups))} groups")
    parts = ([], [])
    for k, g in enumerate(groups):
        parts[g in held].append(k)
    return tuple(Split([split.ids[k] for k in ix], [split.sequences[k] for k in ix], [split.labels[k] for k in ix]) for ix in parts)


def load_task(directory: str | Path) -> Task:
    """Read a task directory (see the module docstring); string labels become class indices."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such task directory")
    meta = json.loads((directory / "task.json").read_text()) if (directory / "task.json").is_file() else {}
    kind = meta.get("kind", "sequence")
    if kind not in ("sequence", "token"):
        raise InputError(f"{directory}/task.json: kind must be 'sequence' or 'token', got {kind!r}")
    names = meta.get("labels")
    parts = {p: _read_split(directory, p, kind, names) for p in ("train", "test")}
    if kind == "sequence":
        names = names or sorted({lab for _, _, labels in parts.values() for lab in labels})
        index = {n: i for i, n in enumerate(names)}
        for p, (ids, seqs, labels) in parts.items():
            unknown = [(i, lab) for i, lab in zip(ids, labels) if lab not in index]
            if unknown:
                raise InputError(f"{directory}/{p}: record {unknown[0][0]!r} has label {unknown[0][1]!r}, not one of {names}")
            parts[p] = (ids, seqs, [index[lab] for lab in labels])
    else:
        names = names or [str(i) for i in range(int(max(max(lab) for lab in parts["train"][2])) + 1)]
    return Task(directory.name, kind, list(names), Split(*parts["train"]), Split(*parts["test"]))


def prodigal_coding_mask(sequence: str, name: str = "chromosome") -> np.ndarray:
    """Bases inside a ``prodigal`` gene call (either strand), single-genome mode."""
    if shutil.which("prodigal") is None:
        raise InputError("prodigal is not installed (Debian package prodigal)")
    with tempfile.TemporaryDirectory() as tmp:
        fa, gff = Path(tmp) / "in.fa", Path(tmp) / "genes.gff"
        fa.write_text(f">{name}\n{sequence}\n")
        subprocess.run(["prodigal", "-i", str(fa), "-f", "gff", "-o", str(gff), "-q", "-p", "single"], check=True)
        mask = np.zeros(len(sequence), dtype=bool)
        for line in gff.read_text().splitlines():
            if line and not line.startswith("#"):
                f = line.split("\t")
                mask[int(f[3]) - 1 : int(f[4])] = True
    return mask


def build_coding_task(out: str | Path, genome: str = KLEBSIELLA_GENOME, window: int = 500, stride: int = 100,
                      max_coding: float = 0.2, split: float = 0.8, max_per_class: int = 1000, seed: int = 0) -> dict:
    """Write the coding-vs-intergenic task (see module docstring); returns its counts."""
    name, seq = max(read_records(genome), key=lambda r: len(r[1]))
    mask = prodigal_coding_mask(seq, name)
    cum = np.concatenate([[0], np.cumsum(mask)])
    starts = np.arange(0, len(seq) - window + 1, stride)
    frac = (cum[starts + window] - cum[starts]) / window
    cut = int(len(seq) * split)
    rng = np.random.default_rng(seed)
    counts, out = {}, Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for part, keep in (("train", starts + window <= cut), ("test", starts >= cut)):
        inter = starts[keep & (frac <= max_coding)]
        coding = starts[keep & (frac == 1.0)]
        n = min(len(inter), len(coding), max_per_class if part == "train" else max_per_class // 4)
        chosen = [("intergenic", s) for s in rng.choice(inter, n, replace=False)] + [("coding", s) for s in rng.choice(coding, n, replace=False)]
        rng.shuffle(chosen)
        _write_csv(out / f"{part}.csv", [(f"{name}:{s + 1}-{s + window}", seq[s : s + window], lab) for lab, s in chosen])
        counts[part] = {"coding": n, "intergenic": n}
    meta = {"kind": "sequence", "labels": ["intergenic", "coding"], "source": f"{genome} ({name}), prodigal -p single",
            "window": window, "stride": stride, "max_coding_intergenic": max_coding, "split": split, "seed": seed, "counts": counts}
    (out / "task.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _genbank_loci(path: Path) -> list[tuple[str, str]]:
    from Bio import SeqIO

    loci = []
    for rec in SeqIO.parse(str(path), "genbank"):
        locus = rec.id
        for feat in rec.features:
            if feat.type == "source":
                for note in feat.qualifiers.get("note", []):
                    if note.startswith("K locus:"):
                        locus = note.split(":", 1)[1].strip()
        loci.append((locus, str(rec.seq).upper()))
    return loci


def build_capsule_task(out: str | Path, fragment: int = 500, per_locus: int = 8, test_fraction: float = 0.2, seed: int = 0,
                       klebsiella: Path = KAPTIVE / "Klebsiella_k_locus_primary_reference.gbk",
                       acinetobacter: Path = KAPTIVE / "Acinetobacter_baumannii_k_locus_primary_reference.gbk") -> dict:
    """Write the Klebsiella-vs-Acinetobacter capsule-locus task: ``per_locus`` random fragments of
    each locus; loci (not fragments) are split into train and test. Classes are balanced by locus count."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "test": []}
    counts = {}
    loci_by_class = {"Klebsiella": _genbank_loci(Path(klebsiella)), "Acinetobacter": _genbank_loci(Path(acinetobacter))}
    n_loci = min(len(v) for v in loci_by_class.values())
    for label, loci in loci_by_class.items():
        order = rng.permutation(len(loci))[:n_loci]
        n_test = int(round(n_loci * test_fraction))
        for j, idx in enumerate(order):
            locus, seq = loci[idx]
            part = "test" if j < n_test else "train"
            clean = seq.replace("N", "")
            if len(clean) < fragment:
                continue
            for s in rng.integers(0, len(seq) - fragment + 1, per_locus):
                frag = seq[s : s + fragment]
                if set(frag) <= set("ACGT"):
                    rows[part].append((f"{label}:{locus}:{s + 1}-{s + fragment}", frag, label))
        counts[label] = {"loci": n_loci, "test_loci": n_test}
    for part in rows:
        rng.shuffle(rows[part])
        _write_csv(out / f"{part}.csv", rows[part])
    meta = {"kind": "sequence", "labels": ["Acinetobacter", "Klebsiella"], "source": f"{klebsiella}, {acinetobacter}",
            "fragment": fragment, "per_locus": per_locus, "test_fraction": test_fraction, "seed": seed, "counts": counts,
            "records": {p: len(r) for p, r in rows.items()}}
    (out / "task.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
