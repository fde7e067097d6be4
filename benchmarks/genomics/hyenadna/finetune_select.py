"""Choose the fine-tuning recipe on a validation split carved from the TRAINING records only.

The validation split holds 20% of the training groups of each label (capsule task: whole loci, so
no locus is on both sides; the test loci are never read here). Every configuration fine-tunes on
the rest of the training records and is scored on the validation split after each epoch (one
strand, and the mean over both strands). The k-mer logistic regression picks k, C and one/both
strands on the same split. Results are appended to ``results/finetune_select_<task>.jsonl``; a
configuration already there is skipped, so running the command again resumes.

    nice -n 10 .venv/bin/python benchmarks/genomics/hyenadna/finetune_select.py --task capsule --configs hyena:5e-4:5:rc attention:5e-4:5:rc

A configuration is ``mixer:lr:epochs[:rc][:last]`` (``rc``: reverse-complement augmentation;
``last``: last-token pooling instead of the mean).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from finetune_bench import parse_records, select_kmer, subsample, task_group  # noqa: E402  (same directory)

from seqverse.genomics.hyenadna.finetune import finetune
from seqverse.genomics.hyenadna.tasks import Split, Task, load_task, validation_split


def carve(task: Task, fraction: float = 0.2, seed: int = 0) -> tuple[Task, Split]:
    """The task with its training split reduced to the fit part (test split dropped), and the validation split
    (the same split ``finetune_bench.py`` selects the k-mer baseline on)."""
    fit, val = validation_split(task.train, fraction, seed, group=task_group(task.name))
    return Task(task.name, task.kind, task.label_names, fit, Split([], [], [])), val


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="runs/hyenadna/pretrain")
    ap.add_argument("--tasks", default="runs/hyenadna/tasks")
    ap.add_argument("--task", default="capsule")
    ap.add_argument("--configs", nargs="*", default=[])
    ap.add_argument("--kmer", action="store_true", help="also select the k-mer baseline on the split")
    ap.add_argument("--train-records", default="coding=600,capsule=all", help="as finetune_bench.py")
    ap.add_argument("--out", default="benchmarks/genomics/hyenadna/results")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(Path(args.tasks) / args.task)
    task.train = subsample(task.train, parse_records(args.train_records).get(args.task, 600), 0)
    fit_task, val = carve(task)
    path = Path(args.out) / f"finetune_select_{args.task}.jsonl"
    done = {json.loads(line)["config"] for line in path.read_text().splitlines()} if path.is_file() else set()
    print(json.dumps({"fit_records": len(fit_task.train.ids), "val_records": len(val.ids),
                      "val_groups": len(set(map(task_group(args.task), val.ids)))}), flush=True)

    def record(row):
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    if args.kmer and "kmer" not in done:
        t = time.time()
        params = select_kmer(fit_task.train, val)
        record({"config": "kmer", "chosen": {k: v for k, v in params.items() if k != "selection_accuracy"},
                "val_accuracy": params["selection_accuracy"], "seconds": round(time.time() - t, 1)})
    for spec in args.configs:
        if spec in done:
            continue
        mixer, lr, epochs, *flags = spec.split(":")
        r = finetune(Path(args.models) / mixer, fit_task, epochs=int(epochs), batch_size=16, lr=float(lr),
                     pooling="last" if "last" in flags else "mean", rc_augment="rc" in flags, both_strands="rc" in flags,
                     val=val, evaluate_test=False, progress=False)
        record({"config": spec, "history": r["history"], "fit_records": r["train_records"], "val_records": r["val_records"],
                "seconds": r["seconds"]})


if __name__ == "__main__":
    main()
