"""Fine-tuning (HyenaDNA Sec. 4.2): a pretrained backbone plus a linear head, trained end to end.

``finetune`` loads the backbone of a pretrained ``HyenaDNAForCausalLM`` directory into a
sequence- (pooled or last-token) or token-classification model, trains it with AdamW on the task's
training split, and reports accuracy on its test split. The fine-tuned model is saved with
``save_pretrained`` plus ``task.json`` (the label names), so ``predict`` can reload it.
"""

from __future__ import annotations

import json
import time
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
def predict(model, sequences: list[str], ids: list[str] | None = None, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``[N, C]`` (sequence task) or a list of ``[L, C]`` (token task)."""
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


def accuracy(model, split, batch_size: int = 32) -> float:
    probs = predict(model, split.sequences, split.ids, batch_size)
    if isinstance(model, HyenaDNAForTokenClassification):
        hits = sum(int((p.argmax(-1) == lab).sum()) for p, lab in zip(probs, split.labels))
        return hits / sum(len(lab) for lab in split.labels)
    return float((probs.argmax(-1) == np.asarray(split.labels)).mean())


def finetune(model_dir: str | Path, task: Task, out: str | Path | None = None, epochs: int = 3, batch_size: int = 16,
             lr: float = 5e-4, weight_decay: float = 0.01, pooling: str = "mean", seed: int = 0, progress: bool = True) -> dict:
    """Fine-tune ``model_dir`` on ``task``; returns ``{"test_accuracy", "train_accuracy", ...}``."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = from_pretrained_backbone(model_dir, task.kind, len(task.label_names), pooling)
    tok = CharacterTokenizer()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(task.train.sequences)
    total = epochs * ((n + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    bar = tqdm(total=total, disable=not progress, desc=f"finetune {task.name}", unit="step")
    t0 = time.perf_counter()
    losses = []
    for _ in range(epochs):
        model.train()
        for idx in _batches(n, batch_size, rng):
            x = _encode(tok, [task.train.sequences[i] for i in idx], [task.train.ids[i] for i in idx])
            logits = model(x)
            if task.kind == "token":
                y = torch.full(x.shape, -100, dtype=torch.long)
                for row, i in enumerate(idx):
                    lab = torch.as_tensor(task.train.labels[i])
                    y[row, x.shape[1] - len(lab) :] = lab
                loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
            else:
                loss = F.cross_entropy(logits, torch.as_tensor([task.train.labels[i] for i in idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    result = {"task": task.name, "mixer": model.config.mixer, "pooling": pooling, "epochs": epochs,
              "train_records": n, "test_records": len(task.test.sequences), "final_train_loss": float(np.mean(losses[-20:])),
              "test_accuracy": accuracy(model, task.test), "seconds": round(seconds, 1)}
    if out is not None:
        out = Path(out)
        model.save_pretrained(out)
        (out / "task.json").write_text(json.dumps({"kind": task.kind, "labels": task.label_names, "pooling": pooling, "result": result}, indent=2) + "\n")
    return result


def load_finetuned(directory: str | Path):
    """A fine-tuned classifier saved by :func:`finetune`, and its label names."""
    directory = Path(directory)
    meta = json.loads((directory / "task.json").read_text())
    if meta["kind"] == "token":
        return HyenaDNAForTokenClassification.from_pretrained(directory), meta["labels"]
    model = HyenaDNAForSequenceClassification.from_pretrained(directory)
    model.pooling = meta.get("pooling", "last")
    return model, meta["labels"]
