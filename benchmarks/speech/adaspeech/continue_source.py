"""Continue a source model's training from its weights alone (no optimizer state).

The original source run (shipped step-1800 model, cosine schedule to 3000 steps) lost its
checkpoint, so ``adaspeech train --steps 3000`` cannot resume it. This continues the shipped
weights on the same corpus and the same held-out split with a fresh AdamW (lr re-warmed over 50
steps, then the original schedule: 1e-3 * (0.1 + 0.9 * cosine) up to ``--until``), batches of
<= 4000 frames, 1 thread, validation every 50 steps; the model is written to ``OUT/model``.

    python benchmarks/speech/adaspeech/continue_source.py --corpus runs/adaspeech/corpus \
        --model runs/adaspeech/model_1800 --out runs/adaspeech/cont --start 1800 --until 3000

(``runs/adaspeech/model_1800``: config.json and model.safetensors of
``assets/source`` at commit 318de65, the step-1800 weights; the shipped model is now step 3000.)
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch

from seqverse.speech.adaspeech.corpus import load_corpus
from seqverse.speech.adaspeech.model import AdaSpeech
from seqverse.speech.adaspeech.train import batches, collate, evaluate_loss, load_items, source_step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus")
    ap.add_argument("--model", default=None, help="weights to continue (default: the shipped source model)")
    ap.add_argument("--out", default="runs/adaspeech/cont")
    ap.add_argument("--start", type=int, default=1800, help="schedule step the weights stopped at")
    ap.add_argument("--until", type=int, default=3000, help="schedule length (and last step)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.model is None:
        from seqverse.speech.adaspeech.api import SOURCE_DIR

        args.model = str(SOURCE_DIR)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = AdaSpeech.from_pretrained(args.model)
    utts, _ = load_corpus(args.corpus)
    source = [u for u in utts if u["role"] == "source"]
    rng = random.Random(0)  # the held-out split of train.train (same seed, same draw)
    torch.manual_seed(0)
    held = set(rng.sample([u["id"] for u in source], max(1, len(source) // 50)))
    items = load_items(args.corpus, source)
    train_items = [it for it in items if it["id"] not in held]
    val_items = [it for it in items if it["id"] in held]
    index = {s: i for i, s in enumerate(model.config.speakers)}
    rng = random.Random(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.0)

    def lr_at(s):
        return 1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, args.until) / args.until)))

    print("start val", evaluate_loss(model, val_items, index), flush=True)
    step, queue, t0 = args.start, [], time.time()
    model.train()
    while step < args.until:
        if not queue:
            queue = batches(train_items, 4000, rng)
        warmup = min(1.0, (step - args.start + 1) / 50)
        _, parts = source_step(model, opt, collate(queue.pop(), index), lr_at(step) * warmup)
        step += 1
        if step % 50 == 0 or step == args.until:
            val = evaluate_loss(model, val_items, index)
            model.train()
            print(step, f"{time.time() - t0:.0f}s", "train mel", round(parts["mel"], 4),
                  "val", {k: round(v, 4) for k, v in val.items()}, flush=True)
            model.save_pretrained(out / "model")


if __name__ == "__main__":
    main()
