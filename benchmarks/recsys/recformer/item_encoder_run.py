"""Issue 28, "text that keeps working": the CPU edition's finalist recipe (`paper-align1`: I only ever
text encodings, frozen in stage 2, alignment 1.0; no --item-lr) trained once, its checkpoint keeping the
encoder state that encoded I (``item_encoder.safetensors``), then read on validation (the 400 users)
and, with --test, once on test: NDCG@10 with the stored I, with every item re-encoded by the stored
I-encoder, and re-encoded by the final encoder.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/recsys/recformer/item_encoder_run.py \\
        --seed 0 [--test] [--split cold-start]

Runs under runs/recsys/item-encoder/paper-align1-seed<SEED>/ (a finished run is not retrained).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import sealed_comparison as sc  # noqa: E402

from seqverse.recsys import data as D  # noqa: E402
from seqverse.recsys.recformer import api  # noqa: E402
from seqverse.recsys.recformer.train import evaluate, validation_users  # noqa: E402


def read(model_dir: Path, stage: str, valid_users: int, split: str = "standard") -> dict:
    out, rows = {}, {}
    for kind in ("saved", "text", "text-final"):
        rec = api.load(model_dir, None, split, item_rows=kind)
        sp = D.make_split(rec.dataset, split, seed=api.split_seed(rec))
        if split == "cold-start":  # the cold-target cases, as api.evaluate
            users = sp.cold_test_users() if stage == "test" else None
        else:
            users = validation_users(sp, valid_users) if stage == "valid" else None
        out[f"I_{kind}"] = evaluate(rec.model, rec.tokenizer, rec.items, sp, stage, users=users)
        rows[kind] = rec.model.item_embedding.weight.detach()[1:]
    for kind in ("text", "text-final"):
        out[f"retained_{kind}"] = out[f"I_{kind}"]["ndcg@10"] / out["I_saved"]["ndcg@10"]
        out[f"max_abs_diff_{kind}"] = float((rows["saved"] - rows[kind]).abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test", action="store_true", help="also evaluate test once (written to test.json)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--split", choices=["standard", "cold-start"], default="standard")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sc.set_protocol("cpu")
    r = sc.recipe("paper-align1")
    out = Path("runs/recsys/item-encoder") / ("" if args.split == "standard" else args.split) / f"paper-align1-seed{args.seed}"
    if not (out / "metrics.json").exists() or not json.loads((out / "metrics.json").read_text()).get("finished"):
        t0 = time.time()
        result = api.train(out, None, args.split, seed=args.seed, evaluate_test=False,
                           log=lambda m: print(m, file=sys.stderr, flush=True), **r)
        result["wall_seconds_this_call"] = time.time() - t0
        api.write_json(out / "metrics.json", result)
        if not result.get("finished"):
            return
    res = json.loads((out / "metrics.json").read_text())
    if "valid_reencode" not in res:
        res["valid_reencode"] = read(out / "model", "valid", r["valid_users"], args.split)
        api.write_json(out / "metrics.json", res)
    print(json.dumps(res["valid_reencode"], indent=1))
    if args.test and not (out / "test.json").exists():
        api.write_json(out / "test.json", read(out / "model", "test", 0, args.split))
    if (out / "test.json").exists():
        print(open(out / "test.json").read())


if __name__ == "__main__":
    main()
