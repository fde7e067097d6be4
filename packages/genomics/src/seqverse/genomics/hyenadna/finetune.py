"""Fine-tuning (HyenaDNA Sec. 4.2): a pretrained backbone plus a linear head, trained end to end.

``finetune`` loads the backbone of a pretrained ``HyenaDNAForCausalLM`` directory into a
sequence- (pooled or last-token) or token-classification model, trains it with AdamW on the task's
training split, and reports accuracy on its test split. The fine-tuned model is saved with
``save_pretrained`` plus ``task.json`` (the label names), so ``predict`` can reload it.

DNA has two strands, and a fragment's label does not depend on which one was sequenced. Options:
``rc_augment`` feeds each training record as its reverse complement with probability 1/2 (drawn
anew each epoch); ``both_strands`` averages a sequence classifier's class probabilities over the
record and its reverse complement at prediction time. ``val`` (a split carved from the training
data, never the test split) is scored after every epoch; with ``keep_best`` the weights of the
epoch with the best validation accuracy are the ones kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqverse.genomics.hyenadna.model import (
    HyenaDNAConfig,
    HyenaDNAForSequenceClassification,
    HyenaDNAForTokenClassification,
    _fill_shared,
    load_state_dict,
)
from seqverse.genomics.hyenadna.tasks import Task
from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer
from seqverse.genomics.io import reverse_complement


def from_pretrained_backbone(model_dir: str | Path, kind: str, num_labels: int, pooling: str = "mean"):
    """A classifier whose ``hyena.*`` weights come from a pretrained model directory (head freshly initialised)."""
    model_dir = Path(model_dir)
    config = HyenaDNAConfig.from_dict(json.loads((model_dir / "config.json").read_text()) | {"num_labels": num_labels})
    model = HyenaDNAForSequenceClassification(config, pooling) if kind == "sequence" else HyenaDNAForTokenClassification(config)
    state = _fill_shared(model, {k: v for k, v in load_state_dict(model_dir).items() if k.startswith("hyena.")})
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("score.")]
    unexpected = [k for k in unexpected if not k.endswith(("pos_emb.z", "pos_emb.t"))]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: backbone does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def _encode(tok: CharacterTokenizer, seqs: list[str], ids: list[str]) -> torch.Tensor:
    return tok.batch(seqs, ids)


@torch.no_grad()
def predict(model, sequences: list[str], ids: list[str] | None = None, batch_size: int = 32, both_strands: bool | None = None) -> np.ndarray:
    """Class probabilities ``[N, C]`` (sequence task) or a list of ``[L, C]`` (token task).
    ``both_strands`` (sequence task): the mean of the probabilities of each record and of its reverse
    complement; ``None``: as the model was fine-tuned (``load_finetuned`` sets ``model.both_strands``)."""
    if both_strands is None:
        both_strands = getattr(model, "both_strands", False)
    if both_strands and not isinstance(model, HyenaDNAForTokenClassification):
        rc = [reverse_complement(s) for s in sequences]
        return (predict(model, sequences, ids, batch_size, False) + predict(model, rc, ids, batch_size, False)) / 2
    model.eval()
    tok = CharacterTokenizer()
    ids = ids or [f"sequence {i + 1}" for i in range(len(sequences))]
    out = []
    for idx in _batches(len(sequences), batch_size, None):
        x = _encode(tok, [sequences[i] for i in idx], [ids[i] for i in idx])
        probs = model(x).softmax(-1)
        if isinstance(model, HyenaDNAForTokenClassification):
            out += [p[-len(sequences[i]) :].numpy() for p, i in zip(probs, idx)]  # left padding
        else:
            out.append(probs.numpy())
    return out if isinstance(model, HyenaDNAForTokenClassification) else np.concatenate(out)


def accuracy(model, split, batch_size: int = 32, both_strands: bool | None = None) -> float:
    probs = predict(model, split.sequences, split.ids, batch_size, both_strands)
    if isinstance(model, HyenaDNAForTokenClassification):
        hits = sum(int((p.argmax(-1) == lab).sum()) for p, lab in zip(probs, split.labels))
        return hits / sum(len(lab) for lab in split.labels)
    return float((probs.argmax(-1) == np.asarray(split.labels)).mean())


class TrainBatches:
    """The fine-tuning batches of one epoch: ``(input ids, labels)`` in an order (and, with
    ``rc_augment``, strand flips) drawn from ``default_rng([seed, epoch])``, so a resumed or
    data-parallel run sees the same batches (:func:`seqverse.core.train.fit` calls ``set_epoch``)."""

    def __init__(self, task: Task, batch_size: int, seed: int, rc_augment: bool):
        self.task, self.batch_size, self.seed, self.rc_augment = task, batch_size, seed, rc_augment
        self.tok, self.epoch = CharacterTokenizer(), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.task.train.sequences) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        split, rng = self.task.train, np.random.default_rng([self.seed, self.epoch])
        for idx in _batches(len(split.sequences), self.batch_size, rng):
            seqs = [split.sequences[i] for i in idx]
            if self.rc_augment:
                seqs = [reverse_complement(s) if flip else s for s, flip in zip(seqs, rng.random(len(seqs)) < 0.5)]
            x = _encode(self.tok, seqs, [split.ids[i] for i in idx])
            if self.task.kind == "token":
                y = torch.full(x.shape, -100, dtype=torch.long)
                for row, i in enumerate(idx):
                    lab = torch.as_tensor(split.labels[i])
                    y[row, x.shape[1] - len(lab) :] = lab  # left padding
            else:
                y = torch.as_tensor([split.labels[i] for i in idx])
            yield x, y


def classification_loss(model, batch) -> torch.Tensor:
    """Cross-entropy of a sequence (``[B]`` labels) or token (``[B, L]``, -100 ignored) classifier."""
    x, y = batch
    logits = model(x)
    if y.dim() == 2:
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
    return F.cross_entropy(logits, y)


def validation_metrics(model, val, kind: str, both_strands: bool) -> dict:
    """Validation accuracy (one strand, and for sequence tasks both strands; ``val_accuracy`` is the one selected on)."""
    if kind != "sequence":
        return {"val_accuracy": accuracy(model, val, both_strands=False)}
    y = np.asarray(val.labels)
    fwd = predict(model, val.sequences, val.ids, both_strands=False)
    rev = predict(model, [reverse_complement(s) for s in val.sequences], val.ids, both_strands=False)
    one, both = float((fwd.argmax(-1) == y).mean()), float(((fwd + rev).argmax(-1) == y).mean())
    return {"val_accuracy_one_strand": one, "val_accuracy_both_strands": both, "val_accuracy": both if both_strands else one}


def finetune(model_dir: str | Path, task: Task, out: str | Path | None = None, epochs: int = 3, batch_size: int = 16,
             lr: float = 5e-4, weight_decay: float = 0.01, pooling: str = "mean", seed: int = 0, progress: bool = True,
             rc_augment: bool = False, both_strands: bool = False, val=None, keep_best: bool = False, evaluate_test: bool = True,
             mesh=None) -> dict:
    """Fine-tune ``model_dir`` on ``task`` with :func:`seqverse.core.train.fit` (AdamW, one-cycle lr,
    clipping at 1); returns ``{"test_accuracy", "history", ...}`` (``history``: the mean training
    loss and, with ``val``, the validation accuracy after each epoch)."""
    if keep_best and val is None:
        raise ValueError("keep_best needs a validation split")
    if rc_augment and task.kind == "token":
        raise ValueError("rc_augment is for sequence tasks (token labels would have to be reversed too)")
    from seqverse.core.train import TrainConfig, fit

    torch.manual_seed(seed)
    model = from_pretrained_backbone(model_dir, task.kind, len(task.label_names), pooling)
    batches = TrainBatches(task, batch_size, seed, rc_augment)
    total = epochs * len(batches)
    n = len(task.train.sequences)
    config = TrainConfig(epochs=epochs, lr=lr, weight_decay=weight_decay, clip_norm=1.0, seed=None, progress=progress,
                         progress_desc=f"finetune {task.name}", monitor="val_accuracy" if val is not None else None,
                         monitor_mode="max", restore_best=keep_best)
    fitted = fit(model, batches, classification_loss, config,
                 eval_fn=(lambda m: validation_metrics(m, val, task.kind, both_strands)) if val is not None else None,
                 scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1),
                 mesh=mesh)
    losses = fitted.losses()
    history = []
    for epoch in range(epochs):
        records = fitted.history[epoch * len(batches) : (epoch + 1) * len(batches)]
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean([r["loss"] for r in records]))}
        entry |= {k: v for k, v in records[-1].items() if k.startswith("val_")}
        history.append(entry)
    seconds = fitted.seconds
    result = {"task": task.name, "mixer": model.config.mixer, "pooling": pooling, "epochs": epochs, "lr": lr,
              "rc_augment": rc_augment, "both_strands": both_strands, "train_records": n,
              "val_records": len(val.sequences) if val is not None else 0, "test_records": len(task.test.sequences),
              "final_train_loss": float(np.mean(losses[-20:])), "history": history, "seconds": round(seconds, 1)}
    if keep_best:
        result["kept_epoch"] = fitted.best_step // len(batches)
    if evaluate_test and task.kind == "sequence":
        predicted = predict(model, task.test.sequences, task.test.ids, both_strands=both_strands).argmax(-1)
        result["test_accuracy"] = float((predicted == np.asarray(task.test.labels)).mean())
        result["test_predicted_per_class"] = np.bincount(predicted, minlength=len(task.label_names)).tolist()
    elif evaluate_test:
        result["test_accuracy"] = accuracy(model, task.test)
    if out is not None and (not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0):
        out = Path(out)
        model.save_pretrained(out)
        (out / "task.json").write_text(json.dumps({"kind": task.kind, "labels": task.label_names, "pooling": pooling,
                                                   "both_strands": both_strands, "result": result}, indent=2) + "\n")
    return result


def load_finetuned(directory: str | Path):
    """A fine-tuned classifier saved by :func:`finetune`, and its label names."""
    directory = Path(directory)
    meta = json.loads((directory / "task.json").read_text())
    if meta["kind"] == "token":
        return HyenaDNAForTokenClassification.from_pretrained(directory), meta["labels"]
    model = HyenaDNAForSequenceClassification.from_pretrained(directory)
    model.pooling = meta.get("pooling", "last")
    model.both_strands = meta.get("both_strands", False)
    return model, meta["labels"]
