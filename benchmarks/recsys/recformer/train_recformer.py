"""Train the Recformer benchmark models (standard, then cold-start), resumable, with time budgets.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/recsys/recformer/train_recformer.py --out runs/recsys/recformer ...

(the exact arguments of the benchmark runs are RECFORMER_COMMANDS in run_bench.py)

Calling it again continues where it stopped (pre-training steps, fine-tuning epochs). Pre-training
uses the cold-start split's training sequences (no cold item), so one encoder can serve both splits
(the first split's is reused for the next); --pretrained starts from a given directory instead.
"""

import argparse
import json
import sys
import time

import torch

from seqverse.recsys.recformer import api


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/recsys/recformer")
    ap.add_argument("--splits", default="standard,cold-start")
    ap.add_argument("--pretrain-steps", type=int, default=400)
    ap.add_argument("--pretrain-minutes", type=float, default=15)
    ap.add_argument("--finetune-minutes", default="30,15", help="budget per split, comma-separated")
    ap.add_argument("--stage1-epochs", type=int, default=2)
    ap.add_argument("--stage2-epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--stage2-decay", action="store_true", help="stage 2 learning rate decays linearly to 0")
    ap.add_argument("--item-lr", type=float, default=0.0,
                    help="> 0: stage 2 also fine-tunes the item matrix I at this rate (not in the paper)")
    ap.add_argument("--item-input", action="store_true",
                    help="rows of I also feed the sequence encoder's input (seqverse extension, not in the paper)")
    ap.add_argument("--history-pool", type=int, default=None,
                    help="N > 0: add a projection of the mean I row of the last N items to the sequence "
                         "representation (seqverse extension, not in the paper)")
    ap.add_argument("--dropout", type=float, default=None,
                    help="hidden and attention dropout while fine-tuning (default: the --pretrained model's, 0.1)")
    ap.add_argument("--patience", type=int, default=3, help="epochs without a better validation NDCG@10 per stage")
    ap.add_argument("--pretrain-lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--samples-per-user", type=int, default=4)
    ap.add_argument("--max-token-num", type=int, default=None,
                    help="tokens per user sequence (default: 160, or the --pretrained model's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2020,
                    help="training randomness; on the cold-start split it also picks the cold items")
    ap.add_argument("--pooler", choices=["avg", "cls"], default=None,
                    help="default: avg, or the --pretrained model's")
    ap.add_argument("--pretrained", default=None, help="reuse this pre-trained directory (skip pre-training)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # <s> (cls) pooling collapses from a random init (every item at cosine ~0.99999, no gradient signal
    # at temp 0.05); the official code's "avg" pooler learns (see the README). The paper starts from
    # longformer-base, which we cannot download here.
    overrides = {k: v for k, v in {"max_token_num": args.max_token_num, "pooler_type": args.pooler,
                                   "item_input": args.item_input or None,
                                   "history_pool": args.history_pool,
                                   "hidden_dropout_prob": args.dropout,
                                   "attention_probs_dropout_prob": args.dropout}.items() if v is not None}
    if args.pretrained is None:
        overrides = {"max_token_num": 160, "pooler_type": "avg", **overrides}
    budgets = [float(x) * 60 for x in args.finetune_minutes.split(",")]

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    pretrained = args.pretrained
    for i, split in enumerate(args.splits.split(",")):
        res = api.train(f"{args.out}/{split}", split=split, pretrained=pretrained,
                        pretrain_steps=args.pretrain_steps, pretrain_budget=args.pretrain_minutes * 60,
                        stage1_epochs=args.stage1_epochs, stage2_epochs=args.stage2_epochs,
                        lr=args.lr, patience=args.patience, stage2_decay=args.stage2_decay, item_lr=args.item_lr,
                        pretrain_lr=args.pretrain_lr, batch_size=args.batch_size,
                        samples_per_user=args.samples_per_user, time_budget=budgets[min(i, len(budgets) - 1)],
                        config_overrides=overrides, seed=args.seed, log=log)
        log(f"{split}: " + json.dumps({k: v for k, v in res.items() if k != "epochs"}))
        if pretrained is None:
            pretrained = f"{args.out}/{split}/pretrain/last"
    return 0


if __name__ == "__main__":
    sys.exit(main())
