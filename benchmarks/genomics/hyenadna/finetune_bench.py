"""Fine-tuning accuracy on two real tasks: HyenaDNA vs the same-size Transformer vs k-mer logistic regression.

Tasks (built by ``seqverse-genomics hyena build-task``): (a) coding vs intergenic 500 bp windows of
HS11286 from prodigal calls, train from the first 80% of the chromosome, test from the last 20%;
(b) Klebsiella vs Acinetobacter capsule-locus fragments (kaptive-data), split by locus.

Both neural models start from their ``pretrain_bench.py`` checkpoints and are fine-tuned end to end
identically (same records, order, epochs, AdamW learning rate, mean pooling; with ``--both-strands``
each training record is fed as its reverse complement with probability 1/2 and predictions average
both strands). The recipe was chosen by ``finetune_select.py`` on a validation split carved from
the training records only. The k-mer logistic regression picks k, C and one/both strands on that
kind of split too: 20% of the training groups (capsule: loci; coding: 100 kb blocks of the
chromosome) held out, then it is refit on all training records. The test split is read only to
score the final models.

    nice -n 10 .venv/bin/python benchmarks/genomics/hyenadna/finetune_bench.py --models runs/hyenadna/pretrain --tasks runs/hyenadna/tasks
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from seqverse.genomics.hyenadna.baselines import kmer_logistic_regression
from seqverse.genomics.hyenadna.finetune import finetune
from seqverse.genomics.hyenadna.tasks import (
    Split,
    build_capsule_task,
    build_coding_task,
    load_task,
    record_group,
    validation_split,
)

BLOCK = 100_000


def task_group(task: str):
    """The unit a validation split keeps whole: the capsule locus, or a 100 kb block of the chromosome
    (coding windows overlap their neighbours, so single windows would leak)."""
    if task == "capsule":
        return record_group
    return lambda rid: f"{rid.rsplit(':', 1)[0]}:{int(rid.rsplit(':', 1)[1].split('-')[0]) // BLOCK}"


def subsample(split: Split, n: int | None, seed: int) -> Split:
    if n is None or len(split.ids) <= n:
        return split
    idx = np.random.default_rng(seed).choice(len(split.ids), n, replace=False)
    return Split([split.ids[i] for i in idx], [split.sequences[i] for i in idx], [split.labels[i] for i in idx])


def select_kmer(fit: Split, val: Split) -> dict:
    """The k-mer baseline's k, C and strands chosen on ``val`` (fitted on ``fit``), with its validation accuracy."""
    mask = [False] * len(fit.ids) + [True] * len(val.ids)
    _, params = kmer_logistic_regression(fit.sequences + val.sequences, fit.labels + val.labels, val_mask=mask,
                                         strands=(False, True), Cs=(0.01, 0.1, 1.0, 10.0))
    return params


def parse_records(text: str) -> dict:
    """``coding=600,capsule=all`` -> ``{"coding": 600, "capsule": None}``."""
    out = {}
    for part in text.split(","):
        name, n = part.split("=")
        out[name] = None if n == "all" else int(n)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="runs/hyenadna/pretrain")
    ap.add_argument("--tasks", default="runs/hyenadna/tasks")
    ap.add_argument("--out", default="benchmarks/genomics/hyenadna/results")
    ap.add_argument("--train-records", default="coding=600,capsule=all", help="training records per task ('all' or a number; CPU budget)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--one-strand", action="store_true", help="no reverse-complement augmentation / both-strand prediction")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--task", choices=["coding", "capsule"], default=None, help="only this task")
    ap.add_argument("--tag", default="", help="suffix of the result files (finetune<tag>.json/.md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    records = parse_records(args.train_records)
    both = not args.one_strand
    recipe = {"epochs": args.epochs, "lr": args.lr, "batch_size": 16, "pooling": "mean", "optimizer": "AdamW (weight decay 0.01), one-cycle schedule",
              "both_strands": both}
    rows = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def write(rows):  # after every row, so a partial run leaves its numbers
        (out / f"finetune{args.tag}.json").write_text(json.dumps({"recipe": recipe, "rows": rows}, indent=2) + "\n")
        lines = ["| task | model | train records | test records | test accuracy |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['task']} | {r['model']} | {r['train_records']} | {r['test_records']} | {r['test_accuracy']:.4f} |" for r in rows]
        (out / f"finetune{args.tag}.md").write_text("\n".join(lines) + "\n")

    for name, build in (("capsule", build_capsule_task), ("coding", build_coding_task)):
        if args.task not in (None, name):
            continue
        d = Path(args.tasks) / name
        if not (d / "task.json").is_file():
            build(d)
        task = load_task(d)
        task.train = subsample(task.train, records.get(name, 600), 0)
        t = time.time()
        params = select_kmer(*validation_split(task.train, 0.2, 0, group=task_group(name)))
        pipe, _ = kmer_logistic_regression(task.train.sequences, task.train.labels, ks=(params["k"],), strands=(params["both_strands"],), Cs=(params["C"],))
        acc = float(np.mean(pipe.predict([s.upper() for s in task.test.sequences]) == np.asarray(task.test.labels)))
        strands = "both strands" if params["both_strands"] else "one strand"
        rows.append({"task": name, "model": f"k-mer logistic regression (k={params['k']}, C={params['C']}, {strands})",
                     "test_accuracy": acc, "val_accuracy": params["selection_accuracy"], "train_records": len(task.train.ids),
                     "test_records": len(task.test.ids), "seconds": round(time.time() - t, 1)})
        print(json.dumps(rows[-1]), flush=True)
        write(rows)
        for mixer, label in (("hyena", "HyenaDNA"), ("attention", "Transformer (same parameter count)")):
            r = finetune(Path(args.models) / mixer, task, epochs=args.epochs, batch_size=16, lr=args.lr, pooling="mean",
                         rc_augment=both, both_strands=both, progress=False)
            rows.append({"task": name, "model": label, "test_accuracy": r["test_accuracy"], "train_records": r["train_records"],
                         "test_records": r["test_records"], "test_predicted_per_class": r["test_predicted_per_class"],
                         "history": r["history"], "seconds": r["seconds"]})
            print(json.dumps(rows[-1]), flush=True)
            write(rows)
    print((out / f"finetune{args.tag}.md").read_text())


if __name__ == "__main__":
    main()
