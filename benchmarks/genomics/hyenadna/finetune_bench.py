"""Fine-tuning accuracy on two real tasks: HyenaDNA vs the same-size Transformer vs k-mer logistic regression.

Tasks (built by ``seqverse-genomics hyena build-task``): (a) coding vs intergenic 500 bp windows of
HS11286 from prodigal calls, train from the first 80% of the chromosome, test from the last 20%;
(b) Klebsiella vs Acinetobacter capsule-locus fragments (kaptive-data), split by locus. Both neural
models start from their ``pretrain_bench.py`` checkpoints and are fine-tuned identically (same
records, order, epochs, learning rate, mean pooling); the logistic regression picks k and C by
3-fold cross-validation on the same training records.

    nice -n 5 .venv/bin/python benchmarks/genomics/hyenadna/finetune_bench.py --models runs/hyenadna/pretrain --tasks runs/hyenadna/tasks
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
from seqverse.genomics.hyenadna.tasks import Split, build_capsule_task, build_coding_task, load_task


def subsample(split: Split, n: int, seed: int) -> Split:
    if len(split.ids) <= n:
        return split
    idx = np.random.default_rng(seed).choice(len(split.ids), n, replace=False)
    return Split([split.ids[i] for i in idx], [split.sequences[i] for i in idx], [split.labels[i] for i in idx])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="runs/hyenadna/pretrain")
    ap.add_argument("--tasks", default="runs/hyenadna/tasks")
    ap.add_argument("--out", default="benchmarks/genomics/hyenadna/results")
    ap.add_argument("--train-records", type=int, default=600, help="training records per task (CPU budget)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--task", choices=["coding", "capsule"], default=None, help="only this task")
    ap.add_argument("--tag", default="", help="suffix of the result files (finetune<tag>.json/.md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, build in (("coding", build_coding_task), ("capsule", build_capsule_task)):
        if args.task not in (None, name):
            continue
        d = Path(args.tasks) / name
        if not (d / "task.json").is_file():
            build(d)
        task = load_task(d)
        task.train = subsample(task.train, args.train_records, 0)
        t = time.time()
        pipe, params = kmer_logistic_regression(task.train.sequences, task.train.labels)
        acc = float(np.mean(pipe.predict([s.upper() for s in task.test.sequences]) == np.asarray(task.test.labels)))
        rows.append({"task": name, "model": f"k-mer logistic regression (k={params['countvectorizer__ngram_range'][0]}, C={params['logisticregression__C']})",
                     "test_accuracy": acc, "train_records": len(task.train.ids), "test_records": len(task.test.ids), "seconds": round(time.time() - t, 1)})
        print(json.dumps(rows[-1]), flush=True)
        for mixer, label in (("hyena", "HyenaDNA"), ("attention", "Transformer (same parameter count)")):
            r = finetune(Path(args.models) / mixer, task, epochs=args.epochs, batch_size=16, lr=5e-4, pooling="mean", progress=False)
            rows.append({"task": name, "model": label, "test_accuracy": r["test_accuracy"], "train_records": r["train_records"],
                         "test_records": r["test_records"], "seconds": r["seconds"]})
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"finetune{args.tag}.json").write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=2) + "\n")
    lines = ["| task | model | train records | test records | test accuracy |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {r['task']} | {r['model']} | {r['train_records']} | {r['test_records']} | {r['test_accuracy']:.4f} |" for r in rows]
    (out / f"finetune{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
