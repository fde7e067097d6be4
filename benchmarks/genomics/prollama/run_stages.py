"""Both ProLLaMA stages on the prepared data, from one base directory (resumable: rerun the same command).

    python benchmarks/genomics/prollama/run_stages.py --base runs/prollama/base-en --out runs/prollama/general \
        --stage1-steps 200 --stage2-steps 200 [--stage1-lr 5e-5] [--stage2-lr 5e-5] [--only 1|2] \
        [--stage2-from DIR] [--balance [POWER]] [--record-mean]
"""

import argparse
import json
from pathlib import Path

import torch

from seqverse.genomics.prollama.data import labelled_examples, protein_texts
from seqverse.genomics.prollama.stages import continual_pretrain, instruction_tune


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="HF causal-LM directory to start from")
    ap.add_argument("--out", required=True, help="writes OUT/stage1, OUT/stage2")
    ap.add_argument("--data-dir", default="runs/prollama/data")
    ap.add_argument("--stage1-steps", type=int, default=200)
    ap.add_argument("--stage2-steps", type=int, default=200)
    ap.add_argument("--stage1-lr", type=float, default=5e-5)
    ap.add_argument("--stage2-lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", type=int, choices=[1, 2], default=None)
    ap.add_argument("--stage2-from", default=None, help="start stage 2 from this model directory instead of OUT/stage1 "
                    "(e.g. a finished stage 2, to continue it)")
    ap.add_argument("--balance", nargs="?", type=float, const=1.0, default=0.0, metavar="POWER",
                    help="stage 2: repeat small superfamilies' examples round((largest / size) ** POWER) times "
                    "(stages.balance_families); bare --balance is POWER 1 (round 3), 0.5 the square-root balance")
    ap.add_argument("--record-mean", action="store_true", help="stage 2: every record weighs alike in the loss "
                    "(stages.answer_loss_per_record_part) instead of every answer token")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.only in (None, 1):
        card1 = continual_pretrain(args.base, protein_texts(args.data_dir, "train"), out / "stage1", args.stage1_steps,
                                   args.batch_size, lr=args.stage1_lr, seed=args.seed,
                                   valid_texts=protein_texts(args.data_dir, "valid")[:60])
        print(json.dumps(card1), flush=True)
        if not card1["finished"]:
            raise SystemExit("stage 1 stopped early (checkpointed): rerun the same command to resume")
    if args.only in (None, 2):
        ex = labelled_examples(args.data_dir)
        card2 = instruction_tune(args.stage2_from or out / "stage1", ex["train"], out / "stage2", args.stage2_steps,
                                 args.batch_size, lr=args.stage2_lr, seed=args.seed, balance=args.balance,
                                 record_mean=args.record_mean)
        print(json.dumps(card2), flush=True)


if __name__ == "__main__":
    main()
