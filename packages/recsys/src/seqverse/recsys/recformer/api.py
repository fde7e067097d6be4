"""What the CLI calls (and a notebook can): load a trained Recformer, evaluate, recommend, train.

The embedded defaults (``assets/ml-100k-standard`` and ``assets/ml-100k-cold-start``) were
trained on the bundled MovieLens-100K; see the model card README in each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from seqverse.core.clikit import InputError
from seqverse.recsys import data as D
from seqverse.recsys.metrics import metrics_from_positions, topk_positions
from seqverse.recsys.recformer.model import RecformerForSeqRec
from seqverse.recsys.recformer.tokenizer import RecformerTokenizer

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODELS = {"standard": ASSETS / "ml-100k-standard", "cold-start": ASSETS / "ml-100k-cold-start"}


@dataclass
class Recommender:
    model: RecformerForSeqRec
    tokenizer: RecformerTokenizer
    dataset: D.Dataset
    items: list          # encoded items of ``dataset``


def load(model_dir: str | Path | None = None, data_dir: str | Path | None = None,
         split: str = "standard") -> Recommender:
    """A trained model directory (default: the embedded one for ``split``) ready for ``data_dir``.

    The item feature matrix saved with the model is used when ``data_dir`` has exactly the items the
    model was trained on (``items.txt``); otherwise every item of ``data_dir`` is encoded from its text.
    """
    from seqverse.recsys.recformer.train import encode_all_items, encode_items, tokenizer_limits

    model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODELS[split]
    if not (model_dir / "config.json").exists():
        raise InputError(f"{model_dir}: not a Recformer model directory (no config.json)")
    model = RecformerForSeqRec.from_pretrained(model_dir)
    model.eval()
    tok_file = model_dir / "tokenizer.json"
    if not tok_file.exists():
        raise InputError(f"{model_dir}: no tokenizer.json beside the weights")
    tok = RecformerTokenizer.from_file(tok_file, **tokenizer_limits(model.config))
    dataset = D.load_dataset(data_dir)
    items = encode_items(tok, dataset)
    saved = (model_dir / "items.txt").read_text().split("\n") if (model_dir / "items.txt").exists() else None
    if saved != dataset.item_tokens[1:] or not hasattr(model, "item_embedding"):
        model.init_item_embedding(encode_all_items(model.longformer, tok, items, progress=True))
    return Recommender(model, tok, dataset, items)


def save(rec_model: RecformerForSeqRec, tok: RecformerTokenizer, dataset: D.Dataset, out_dir: str | Path,
         card: str | None = None) -> None:
    out_dir = Path(out_dir)
    rec_model.save_pretrained(out_dir)
    tok.save(out_dir / "tokenizer.json")
    (out_dir / "items.txt").write_text("\n".join(dataset.item_tokens[1:]))
    if card is not None:
        (out_dir / "README.md").write_text(card)


def evaluate(rec: Recommender, split: str = "standard", stage: str = "test", seed: int = 2020,
             progress: bool = True) -> dict:
    """RecBole-protocol metrics on the test split; on ``cold-start`` only the cold-target cases."""
    from seqverse.recsys.recformer.train import evaluate as _evaluate

    sp = D.make_split(rec.dataset, split, seed=seed)
    users = sp.cold_test_users() if split == "cold-start" else sp.users
    m = _evaluate(rec.model, rec.tokenizer, rec.items, sp, stage, users=users, progress=progress)
    return m


def recommend(rec: Recommender, user: str, k: int = 10, include_seen: bool = False) -> list[dict]:
    """Top-k items for a user's whole history in the data, as (rank, item id, title, score)."""
    from seqverse.recsys.recformer.train import encode_history

    u = rec.dataset.user_index(user)
    history = rec.dataset.sequences[u]
    batch = rec.tokenizer.pad([encode_history(rec.tokenizer, rec.items, history)])
    with torch.no_grad():
        scores = rec.model(batch)[0]
    if not include_seen:
        scores[torch.tensor(sorted(set(history)), dtype=torch.long)] = -float("inf")
    top = torch.topk(scores, k)
    out = []
    for r, (s, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
        attrs = rec.dataset.item_attrs[i]
        title = next(iter(attrs.values()), "") if attrs else ""
        out.append({"rank": r, "item_id": rec.dataset.item_tokens[i], "title": title,
                    **({"year": attrs["release_year"]} if "release_year" in attrs else {}), "score": round(s, 4)})
    return out


def popularity_positions(split: D.Split, n_items: int, users: list[int]) -> list[int]:
    """Popularity baseline: items ranked by training-interaction count, same full-ranking protocol."""
    counts = torch.zeros(n_items + 1)
    for seq in split.train:
        for i in seq:
            counts[i] += 1
    scores = counts.unsqueeze(0).expand(len(users), -1)
    targets = torch.tensor([split.test_target[u] for u in users])
    return topk_positions(scores, targets).tolist()


def popularity(dataset: D.Dataset, split_kind: str = "standard", seed: int = 2020) -> dict:
    sp = D.make_split(dataset, split_kind, seed=seed)
    users = sp.cold_test_users() if split_kind == "cold-start" else sp.users
    return metrics_from_positions(popularity_positions(sp, dataset.n_items, users))


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def train(out_dir: str | Path, data_dir: str | Path | None = None, split: str = "standard",
          pretrained: str | Path | None = None, pretrain_steps: int = 600, stage1_epochs: int = 10,
          stage2_epochs: int = 5, samples_per_user: int = 1, batch_size: int = 16, lr: float = 5e-4,
          patience: int = 3, stage2_decay: bool = False, item_lr: float = 0.0, pretrain_lr: float = 1e-3,
          time_budget: float | None = None, pretrain_budget: float | None = None,
          config_overrides: dict | None = None, seed: int = 2020, log=print) -> dict:
    """Pre-train (unless ``pretrained`` is given), two-stage fine-tune, test; resumable in ``out_dir``.

    Pre-training uses the training sequences of the cold-start split, which hold no cold item and
    no validation/test interaction of either split, so one pre-trained encoder serves both splits.
    Writes ``out_dir/model`` (weights, tokenizer, items.txt) and ``out_dir/metrics.json``.
    """
    from seqverse.recsys.recformer.model import RecformerConfig
    from seqverse.recsys.recformer.train import finetune, pretrain

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = D.load_dataset(data_dir)
    config = RecformerConfig(**(config_overrides or {}))
    if pretrained is None:
        pt_split = D.make_split(dataset, "cold-start", seed=seed)
        pretrained = pretrain(dataset, pt_split.train, out_dir / "pretrain", config, steps=pretrain_steps,
                              batch_size=batch_size, lr=pretrain_lr, seed=seed, time_budget=pretrain_budget, log=log)
        tok_file = out_dir / "pretrain" / "tokenizer.json"
    else:
        pretrained = Path(pretrained)
        tok_file = pretrained / "tokenizer.json"
        if not tok_file.exists():
            tok_file = pretrained.parent / "tokenizer.json"
        # the pre-trained architecture; ``config_overrides`` (e.g. a longer ``max_token_num``) apply on top
        config = RecformerConfig.from_dict({**json.loads((pretrained / "config.json").read_text()),
                                            **(config_overrides or {})})
    sp = D.make_split(dataset, split, seed=seed)
    state = finetune(dataset, sp, out_dir / "finetune", config, pretrained=pretrained,
                     tokenizer_file=tok_file if tok_file.exists() else None, stage1_epochs=stage1_epochs,
                     stage2_epochs=stage2_epochs, samples_per_user=samples_per_user, batch_size=batch_size,
                     lr=lr, patience=patience, stage2_decay=stage2_decay, item_lr=item_lr, seed=seed,
                     time_budget=time_budget, log=log)
    best = out_dir / "finetune" / "best"
    model = RecformerForSeqRec.from_pretrained(best)
    tok = RecformerTokenizer.from_file(best / "tokenizer.json")
    save(model, tok, dataset, out_dir / "model")
    rec = load(out_dir / "model", data_dir, split)
    result = {"split": split, "test": evaluate(rec, split, seed=seed), "best_valid_ndcg@10": state["best"],
              "finished": state["stage"] == 2 and (state["epoch"] >= stage2_epochs or state["bad"] >= patience),
              "epochs": state["log"]}
    if split == "cold-start":
        sp_all = D.make_split(dataset, split, seed=seed)
        from seqverse.recsys.recformer.train import evaluate as _ev
        result["test_all_users"] = _ev(rec.model, rec.tokenizer, rec.items, sp_all, "test")
    write_json(out_dir / "metrics.json", result)
    return result
