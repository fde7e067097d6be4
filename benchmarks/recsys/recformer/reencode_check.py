"""A Recformer model's NDCG@10 with its item matrix ``I`` as saved, with every row re-encoded from
the items' text by the encoder state that encoded ``I`` (``item_encoder.safetensors``, when the model
keeps it; else the final encoder) and by its final encoder (issue 28: text that keeps working), on ML-100K's standard split.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/recsys/recformer/reencode_check.py \\
        [MODEL_DIR] --stage valid --valid-users 400 --json

MODEL_DIR defaults to the embedded standard model. Also prints the median cosine between each saved
row and its text encoding.
"""

from __future__ import annotations

import argparse
import json

import torch

from seqverse.recsys import data as D
from seqverse.recsys.recformer import api
from seqverse.recsys.recformer.train import evaluate, validation_users


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", default=None, help="model directory (default: the embedded standard one)")
    ap.add_argument("--stage", choices=["valid", "test"], default="valid", help="which leave-one-out target")
    ap.add_argument("--valid-users", type=int, default=0,
                    help="fixed subset of users (train.validation_users; 0 = all 943)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    rows = {}
    for kind in ("saved", "text", "text-final"):
        rec = api.load(args.model_dir, None, "standard", item_rows=kind)
        sp = D.make_split(rec.dataset, "standard")
        users = validation_users(sp, args.valid_users)
        out[f"I_{kind}"] = evaluate(rec.model, rec.tokenizer, rec.items, sp, args.stage, users=users)
        rows[kind] = rec.model.item_embedding.weight.detach()[1:]
    out["retained"] = out["I_text"]["ndcg@10"] / out["I_saved"]["ndcg@10"]
    out["retained_final_encoder"] = out["I_text-final"]["ndcg@10"] / out["I_saved"]["ndcg@10"]
    for kind in ("text", "text-final"):
        out[f"median_cosine_saved_vs_{kind}"] = float(torch.nn.functional.cosine_similarity(
            rows["saved"], rows[kind], dim=-1).median())
        out[f"max_abs_diff_saved_vs_{kind}"] = float((rows["saved"] - rows[kind]).abs().max())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
