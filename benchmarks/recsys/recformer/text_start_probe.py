"""A small measured probe of issue 28's two questions, sized for a shared 2-core CPU (not a benchmark
of final quality; the sealed comparison is ``sealed_comparison.py``):

1. Does the pretrained language start help? all-MiniLM-L6-v2-initialised Recformer (LoRA rank 8,
   base frozen) vs the same shape and WordPiece tokenizer at random initialisation (all weights
   trained), at an equal number of optimizer steps, same data order, same learning rates.
2. Does the model still work from text? After training, validation NDCG@10 with the fine-tuned item
   matrix ``I`` vs with ``I`` re-encoded from the items' text by the same trained encoder.

Protocol (written before the run): ML-100K standard split (RecBole leave-one-out), validation
targets only (no test number is computed), full ranking over all 1,682 items, on a fixed seeded
subset of validation users (``--valid-users``; 0 = all 943). Training: ``--steps`` AdamW steps
(encoder lr ``--lr``, items ``--item-lr``, no decay) of Recformer's fine-tuning loss (softmax over
all items), ``I`` starting from the text encodings and fine-tuned (the embedded recipe's stage 2),
examples = (a user's training prefix, next item) drawn once with ``--seed``, through
``seqverse.core.train.fit``. MiniLM also gets a step-0 (zero-shot) row: its sentence embeddings
alone. Results: ``--out``/<arm>.json (an arm that finished is not rerun) and a markdown table.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/recsys/recformer/text_start_probe.py
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from seqverse.core.train import TrainConfig, fit
from seqverse.recsys import data as D
from seqverse.recsys.recformer.model import MINILM, RecformerForSeqRec, base_config
from seqverse.recsys.recformer.train import (
    build_tokenizer,
    encode_all_items,
    encode_history,
    encode_items,
    evaluate,
    item_batch_for,
    seqrec_loss,
)

ARMS = {"minilm": {}, "minilm-random": {"base_model": "", "lora_rank": 0}}


def encode_items_by_length(model, tok, items, batch_size=128) -> torch.Tensor:
    """``encode_all_items`` over items sorted by length (less padding; padding changes no state)."""
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
    enc = encode_all_items(model.longformer, tok, [items[i] for i in order], batch_size=batch_size)
    out = torch.empty_like(enc)
    out[torch.tensor(order)] = enc
    return out


def examples(split: D.Split, n: int, seed: int) -> list[tuple[list[int], int]]:
    """``n`` (training prefix, next item) pairs, users in a seeded shuffled cycle, one random target
    position per draw (as the official collator samples)."""
    rnd = random.Random(seed)
    users = [u for u in split.users if len(split.train[u]) >= 2]
    out = []
    while len(out) < n:
        rnd.shuffle(users)
        for u in users:
            seq = split.train[u]
            pos = rnd.randint(1, len(seq) - 1)
            out.append((seq[:pos], seq[pos]))
    return out[:n]


def run_arm(name: str, args, ds, split, valid_users, log) -> dict:
    cfg = base_config(MINILM, max_token_num=args.max_token_num, align_weight=args.align_weight, **ARMS[name])
    tok = build_tokenizer(ds, cfg)
    items = encode_items(tok, ds)
    torch.manual_seed(args.seed)
    model = RecformerForSeqRec(cfg)
    t0 = time.time()
    model.init_item_embedding(encode_items_by_length(model, tok, items))
    res = {"arm": name, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "item_lr": args.item_lr,
           "max_token_num": args.max_token_num, "align_weight": args.align_weight, "seed": args.seed,
           "valid_users": len(valid_users),
           "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if name == "minilm":
        res["step0_text_I"] = evaluate(model, tok, items, split, "valid", users=valid_users)
        log(f"{name} step 0 (text I): {res['step0_text_I']}")
    model.item_embedding.weight.requires_grad_(True)
    train = examples(split, args.steps * args.batch_size, args.seed)

    def collate(rows):
        labels = torch.tensor([t for _, t in rows])
        return {"hist": tok.pad([encode_history(tok, items, h) for h, _ in rows]), "labels": labels,
                "items": item_batch_for(tok, items, labels) if cfg.align_weight > 0 else None}

    def loss_fn(m, batch):
        return seqrec_loss(m, batch["hist"], batch["labels"], item_batch=batch["items"])

    def optimizer(m):
        enc = [p for n, p in m.named_parameters() if p.requires_grad and n != "item_embedding.weight"]
        return torch.optim.AdamW([{"params": enc, "lr": args.lr, "weight_decay": 0.01},
                                  {"params": [m.item_embedding.weight], "lr": args.item_lr, "weight_decay": 0.0}])

    def batch_at(step):  # step -> batch: every arm sees the same batches in the same order
        return collate(train[step * args.batch_size:(step + 1) * args.batch_size])

    result = fit(model, batch_at, loss_fn, TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                                    clip_norm=1.0, seed=args.seed, shuffle=False, progress=True,
                                                    progress_desc=name, log_every=5, device="cpu"),
                 optimizer=optimizer)
    res["train_loss_first_last"] = [result.history[0].get("loss"), result.history[-1].get("loss")]
    model.eval()
    res["tuned_I"] = evaluate(model, tok, items, split, "valid", users=valid_users)
    log(f"{name} step {args.steps} (fine-tuned I): {res['tuned_I']}")
    model.init_item_embedding(encode_items_by_length(model, tok, items))
    res["text_I"] = evaluate(model, tok, items, split, "valid", users=valid_users)
    log(f"{name} step {args.steps} (I re-encoded from text): {res['text_I']}")
    res["seconds"] = round(time.time() - t0, 1)
    return res


def table(rows: list[dict]) -> str:
    out = ["| arm | steps | trainable params | valid NDCG@10, step 0 (text I) | fine-tuned I | I re-encoded from text | "
           "re-encoded / fine-tuned |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s0 = r.get("step0_text_I", {}).get("ndcg@10")
        tuned, text = r["tuned_I"]["ndcg@10"], r["text_I"]["ndcg@10"]
        out.append(f"| {r['arm']} | {r['steps']} | {r['trainable_parameters']:,} | "
                   f"{'' if s0 is None else f'{s0:.4f}'} | {tuned:.4f} | {text:.4f} | "
                   f"{text / tuned if tuned else float('nan'):.2f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/recsys/text-start-probe", help="result directory (resumable by arm)")
    ap.add_argument("--arms", default="minilm,minilm-random", help="comma-separated: minilm, minilm-random")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per arm")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per step")
    ap.add_argument("--lr", type=float, default=1e-3, help="encoder learning rate (LoRA / all weights)")
    ap.add_argument("--item-lr", type=float, default=3e-3, help="learning rate of the item matrix I")
    ap.add_argument("--align-weight", type=float, default=0.0, help="I-to-text alignment term weight")
    ap.add_argument("--max-token-num", type=int, default=64, help="tokens per user history")
    ap.add_argument("--valid-users", type=int, default=300, help="seeded subset of validation users (0 = all)")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = D.load_dataset()
    split = D.make_split(ds, "standard")
    valid_users = sorted(random.Random(0).sample(split.users, args.valid_users)) if args.valid_users else split.users
    rows = []
    for name in args.arms.split(","):
        f = out / f"{name}.json"
        if not f.exists():
            res = run_arm(name, args, ds, split, valid_users, log=lambda m: print(m, flush=True))
            f.with_suffix(".tmp").write_text(json.dumps(res, indent=1))
            f.with_suffix(".tmp").replace(f)
        rows.append(json.loads(f.read_text()))
    (out / "table.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
