"""Copy a finished benchmark model into the package as the embedded default, with its model card.

    .venv/bin/python benchmarks/recsys/recformer/embed_default.py --split standard
    .venv/bin/python benchmarks/recsys/recformer/embed_default.py --split cold-start

Source: runs/recsys/recformer/<split>/{model,metrics.json,finetune/state.json} written by
train_recformer.py; destination: seqverse/recsys/recformer/assets/ml-100k-<split>/ (<= 10 MB).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ASSETS = ROOT / "packages/recsys/src/seqverse/recsys/recformer/assets"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=["standard", "cold-start"], required=True)
    ap.add_argument("--runs", default=str(ROOT / "runs/recsys/recformer"))
    ap.add_argument("--train-command", action="append", default=None,
                    help="a command that trained it, for the model card (repeat for several)")
    ap.add_argument("--pretraining", default=None,
                    help="one line on the pre-training, for the model card (default: read from the run)")
    args = ap.parse_args()
    src = Path(args.runs) / args.split
    metrics = json.loads((src / "metrics.json").read_text())
    cfg = json.loads((src / "model" / "config.json").read_text())
    dst = ASSETS / f"ml-100k-{args.split}"
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "items.txt"):
        shutil.copy(src / "model" / name, tmp / name)
    size = sum(p.stat().st_size for p in tmp.iterdir())
    if size > 10 * 2**20:
        sys.exit(f"{size} bytes > 10 MB")
    epochs = "\n".join(f"| {e['stage']} | {e['epoch']} | {e['train_loss']:.3f} | {e['valid_ndcg@10']:.4f} |"
                       for e in metrics["epochs"])
    test = metrics["test"]
    commands = "\n    ".join(args.train_command or [".venv/bin/python benchmarks/recsys/recformer/train_recformer.py "
                                                   "--out runs/recsys/recformer"])
    pt_state = src / "pretrain" / "state.json"
    pretraining = args.pretraining or (
        f"Pre-training {json.loads(pt_state.read_text())['step']} steps (contrastive + MLM) on the cold-start "
        "split's training sequences, then")
    card = f"""# Recformer, MovieLens-100K, {args.split} split (seqverse embedded default)

Data: MovieLens-100K RecBole atomic files bundled with seqverse-recsys (= recbole 1.2.1's
`dataset_example/ml-100k`), {args.split} split (leave-one-out by time; cold-start: 10% of items held
out of training, seed 2020). Evaluation: RecBole's full ranking over all 1682 items.

Trained by:

    {commands}
    .venv/bin/python benchmarks/recsys/recformer/embed_default.py --split {args.split}

Model: hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, {cfg['num_attention_heads']} heads,
attention window {cfg['attention_window']}, max {cfg['max_token_num']} tokens per user, pooler
`{cfg['pooler_type']}`, temperature {cfg['temp']}, word-level vocabulary of {cfg['vocab_size']} tokens.
{pretraining}
two-stage fine-tuning (epochs below; validation NDCG@10 selects the checkpoint).

Test ({'cold-target cases' if args.split == 'cold-start' else 'all users'}, n = {test['n']}):
NDCG@10 {test['ndcg@10']:.4f}, Recall@10 {test['recall@10']:.4f}, MRR@10 {test['mrr@10']:.4f}.
Finished all planned epochs: {metrics['finished']}.

| stage | epoch | train loss | valid NDCG@10 |
| --- | --- | --- | --- |
{epochs}
"""
    (tmp / "README.md").write_text(card)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.replace(dst)
    print(f"{dst}: {size / 2**20:.2f} MB")


if __name__ == "__main__":
    main()
