"""Train and test one RecBole 1.2.1 model on a prepared atomic dataset; runs in RecBole's own venv.

Usage (from the repo root; `run_bench.py` calls it):
    runs/recbole-venv/bin/python benchmarks/recsys/recformer/recbole_run.py \
        --model SASRec --data-root runs/recsys/recbole_data --dataset ml-100k-standard \
        --epochs 30 --out runs/recsys/bench/standard/SASRec.json

RecBole is driven through recbole.config/data/utils/trainer (recbole.quick_start imports an old
ray that breaks on import). Its split is LS valid_and_test with TO ordering and full ranking;
the .inter file we give it is written by seqverse (`data.write_atomic_inter`) so both sides see
identical sequences. Besides RecBole's own test metrics, we dump per test case the user, the
history RecBole fed the model, the target and the 1-based position of the target in the top-10
(0 if absent), computed with torch.topk exactly as RecBole's evaluator does, so seqverse can
(a) check the histories equal its own split and (b) compute metrics on the cold-target subset.
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

# RecBole 1.2.1's NDCG uses np.float, an alias numpy removed in 1.24; restore just that alias.
if not hasattr(np, "float"):
    np.float = float

_torch_load = torch.load


def _load_own_checkpoint(*args, **kwargs):
    # RecBole's trainer reloads the best checkpoint it wrote itself (a pickled dict with its
    # config); torch >= 2.6 defaults to weights_only=True which refuses that file.
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _load_own_checkpoint

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_logger, init_seed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--stopping-step", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2020, help="RecBole's seed (init_seed, reproducibility on)")
    ap.add_argument("--gpu", action="store_true", help="use_gpu (CUDA when present); CPU otherwise")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop training after the first epoch that ends past this wall-clock budget "
                         "(the best checkpoint so far is then tested); recorded in the result")
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-only", action="store_true",
                    help="no training: test the newest checkpoint RecBole saved for this model "
                         "(e.g. after an interrupted run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    config_dict = {
        "data_path": os.path.abspath(args.data_root),
        "checkpoint_dir": os.path.join(out_dir, "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "MRR", "NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "train_neg_sample_args": None,  # CE loss over all items (SASRec/GRU4Rec/BERT4Rec default loss_type)
        "use_gpu": bool(args.gpu),
        "show_progress": False,
        "seed": args.seed,
        "reproducibility": True,
        "log_wandb": False,
    }
    config = Config(model=args.model, dataset=args.dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    t0 = time.time()
    epochs_run = []

    class _Budget(Exception):
        pass

    def _callback(epoch_idx, valid_score):
        epochs_run.append({"epoch": epoch_idx, "valid_ndcg@10": float(valid_score), "seconds": time.time() - t0})
        if args.max_seconds is not None and time.time() - t0 > args.max_seconds:
            raise _Budget()

    stopped_by_budget = False
    model_file = None
    if args.eval_only:
        ckpts = sorted(glob.glob(os.path.join(config["checkpoint_dir"], f"{args.model}-*.pth")), key=os.path.getmtime)
        if not ckpts:
            raise SystemExit(f"no saved {args.model} checkpoint in {config['checkpoint_dir']}")
        model_file = ckpts[-1]
        ck = torch.load(model_file, map_location="cpu")
        epochs_run.append({"epoch": int(ck["epoch"]), "note": f"interrupted run; tested its best checkpoint {os.path.basename(model_file)}"})
        stopped_by_budget = True
        best_valid_result = trainer.evaluate(valid_data, load_best_model=True, model_file=model_file, show_progress=False)
    else:
        try:
            trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=_callback)
        except _Budget:
            stopped_by_budget = True
        best_valid_result = trainer.best_valid_result
    train_s = time.time() - t0
    test_result = trainer.evaluate(test_data, load_best_model=True, model_file=model_file, show_progress=False)

    # per-case dump, mirroring Trainer._full_sort_batch_eval + TopK metrics
    model.eval()
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    cases = []
    with torch.no_grad():
        for interaction, history_index, _positive_u, positive_i in test_data:
            scores = model.full_sort_predict(interaction).view(-1, dataset.item_num)
            scores[:, 0] = -float("inf")
            if history_index is not None:
                scores[history_index] = -float("inf")
            topk_idx = torch.topk(scores, 10, dim=-1).indices
            hits = topk_idx == positive_i.view(-1, 1)
            pos = torch.where(hits.any(1), hits.float().argmax(1) + 1, torch.zeros_like(positive_i))
            lists = interaction[model.ITEM_SEQ]
            lengths = interaction[model.ITEM_SEQ_LEN]
            for r in range(len(positive_i)):
                hist = lists[r, : lengths[r]].tolist()
                cases.append({
                    "user": dataset.id2token(uid_field, int(interaction[uid_field][r])),
                    "history": [str(t) for t in dataset.id2token(iid_field, hist)],
                    "target": str(dataset.id2token(iid_field, int(positive_i[r]))),
                    "topk_pos": int(pos[r]),
                })
    result = {
        "model": args.model, "dataset": args.dataset, "epochs_cap": args.epochs,
        "stopping_step": args.stopping_step, "seed": args.seed, "best_valid": dict(best_valid_result or {}),
        "epochs_run": epochs_run, "stopped_by_time_budget": stopped_by_budget, "max_seconds": args.max_seconds,
        "test_recbole": {k: float(v) for k, v in test_result.items()},
        "train_seconds": train_s, "max_item_list_length": config["MAX_ITEM_LIST_LENGTH"],
        "recbole_version": __import__("recbole").__version__, "torch": torch.__version__,
        "cases": cases,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh)
    os.replace(tmp, args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "cases"}), file=sys.stderr)


if __name__ == "__main__":
    main()
