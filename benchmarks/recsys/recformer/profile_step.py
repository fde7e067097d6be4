"""Where a MiniLM-start Recformer fine-tuning step spends its time on CPU (issue 28).

One fine-tuning step = tokenised histories padded to a batch, encoder forward, scores against
``I``, softmax loss (+ the alignment term's item batch when its weight > 0), backward, AdamW.
Timed per part (median of ``--repeats`` steps after one warm-up), for each ``--tokens`` value, and
torch's profiler table of the top operators for the first one. 1 thread by default.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/recsys/recformer/profile_step.py
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from seqverse.recsys import data as D
from seqverse.recsys.recformer.model import MINILM, RecformerForSeqRec, base_config
from seqverse.recsys.recformer.train import (
    build_tokenizer,
    encode_history,
    encode_items,
    item_batch_for,
    seqrec_loss,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="256,128", help="max_token_num values to time (comma-separated)")
    ap.add_argument("--batch-size", type=int, default=16, help="histories per step")
    ap.add_argument("--align-weight", type=float, default=0.1, help="alignment term weight (0 = off)")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per setting (after one warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = D.load_dataset()
    split = D.make_split(ds, "standard")
    rnd = random.Random(0)
    users = rnd.sample([u for u in split.users if len(split.train[u]) >= 2], args.batch_size)
    rows = []
    for n in (int(x) for x in args.tokens.split(",")):
        cfg = base_config(MINILM, max_token_num=n, align_weight=args.align_weight)
        tok = build_tokenizer(ds, cfg)
        items = encode_items(tok, ds)
        torch.manual_seed(0)
        model = RecformerForSeqRec(cfg)
        model.init_item_embedding(torch.randn(len(items), cfg.hidden_size))
        model.item_embedding.weight.requires_grad_(True)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        parts = {"collate": [], "forward": [], "backward": [], "optimizer": []}
        lengths = [len(items[i][0]) for i in range(1, len(items))]
        for rep in range(args.repeats + 1):
            t0 = time.perf_counter()
            seqs = [split.train[u][: len(split.train[u]) - 1 - rep] for u in users]
            labels = torch.tensor([split.train[u][len(split.train[u]) - 1 - rep] for u in users])
            hist = tok.pad([encode_history(tok, items, s) for s in seqs])
            ib = item_batch_for(tok, items, labels) if args.align_weight > 0 else None
            t1 = time.perf_counter()
            loss = seqrec_loss(model, hist, labels, item_batch=ib)
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            opt.zero_grad()
            t4 = time.perf_counter()
            if rep:
                for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    parts[k].append(v)
        med = {k: round(statistics.median(v), 3) for k, v in parts.items()}
        row = {"max_token_num": n, "batch_size": args.batch_size, "threads": args.threads,
               "tokens_per_batch": int(hist["attention_mask"].sum()), "padded_width": hist["input_ids"].shape[1],
               "item_tokens_median": statistics.median(lengths), "item_tokens_max": max(lengths),
               "seconds": med, "step_seconds": round(sum(med.values()), 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.profile and n == int(args.tokens.split(",")[0]):
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                loss = seqrec_loss(model, hist, labels, item_batch=ib)
                loss.backward()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)


if __name__ == "__main__":
    main()
