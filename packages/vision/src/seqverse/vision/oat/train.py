"""Training OAT (official ``transformerLightning.py``: teacher-forced cross-entropy, Adam 1e-4, gradient
clipping 1.0, early stopping on the validation behavioural delta of greedy scanpaths).

The shared engine ``seqverse.core.train.fit`` had not landed when this was written, so
:func:`fit_minimal` is a small loop with the engine's shape (model, data, ``loss_fn(model, batch)``,
``eval_fn(model)``, monitor 'min', patience, checkpoint/resume); swapping it for ``fit`` is one line.
Checkpoints are safetensors: OUT/checkpoint/ (model, optimizer, state.json) after every evaluation,
OUT/best/ (config.json + model.safetensors) at each new best. Re-running with the same OUT resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .data import batches, collate, examples, oat_loss
from .displays import Display
from .metrics import behavioural_delta, mean_behaviour, sequence_score
from .model import OAT, OATConfig


def predict_objects(model, displays: Sequence[Display], sample: bool = False, n: int = 1, batch_size: int = 16,
                    seed: int = 0) -> list[list[list[int]]]:
    """Scanpaths (object indices) per display: greedy (n=1) or ``n`` sampled ones."""
    from .data import display_tensors

    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    appearance = getattr(model.config, "appearance", True)
    if not sample:
        for i in range(0, len(displays), batch_size):
            chunk = displays[i : i + batch_size]
            out.extend([[p] for p in model.generate(display_tensors(chunk, appearance), generator=gen)])
        return out
    for d in displays:
        batch = display_tensors([d] * n, appearance)
        out.append(model.generate(batch, sample=True, generator=gen))
    return out


def validation_metrics(model, displays: Sequence[Display]) -> dict:
    """Greedy scanpaths on validation displays: behavioural delta (the monitor) and sequence score."""
    preds = [p[0] for p in predict_objects(model, displays)]
    human, pred, ss, targets_h, targets_p = [], [], [], [], []
    for d, p in zip(displays, preds):
        for s in d.scanpaths.values():
            human.append(s)
            targets_h.append(d.target)
            pred.append(p)
            targets_p.append(d.target)
            ss.append(sequence_score(p, s))
    delta = behavioural_delta(mean_behaviour(pred, targets_p), mean_behaviour(human, targets_h))
    return {"valid_delta": delta, "valid_sequence_score": float(np.mean(ss)),
            "valid_length": float(np.mean([len(p) for p in preds]))}


def _save_checkpoint(directory: Path, model, optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = directory.with_name(directory.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    opt = {}
    for i, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            opt[f"{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
    save_file(opt, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    (tmp / "config.json").write_text(json.dumps({"model": type(model).__name__, **asdict(model.config)}, indent=2))
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    tmp.rename(directory)


def _load_checkpoint(directory: Path, model, optimizer) -> dict:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    raw = load_file(str(directory / "optimizer.safetensors"))
    sd = optimizer.state_dict()
    state: dict = {}
    for key, v in raw.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return json.loads((directory / "state.json").read_text())


def fit_minimal(model, train_items: Sequence, make_batch: Callable, loss_fn: Callable, eval_fn: Callable,
                out_dir: str | Path, epochs: int = 30, batch_size: int = 16, lr: float = 1e-4, clip_norm: float = 1.0,
                patience: int = 5, seed: int = 0, monitor: str = "valid_delta", progress: bool = True,
                log: Callable = print, group_items: bool = False) -> dict:
    """Epochs of Adam on ``loss_fn(model, make_batch(items))``; evaluate each epoch; keep the best (min).

    Resumes from OUT/checkpoint when present. Returns {"best": metric, "best_epoch", "history"}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = {"epoch": 0, "best": float("inf"), "best_epoch": -1, "bad_epochs": 0, "history": []}
    if (out / "checkpoint" / "state.json").exists():
        state = _load_checkpoint(out / "checkpoint", model, optimizer)
        log(f"resumed from {out / 'checkpoint'} at epoch {state['epoch']}")
    while state["epoch"] < epochs and state["bad_epochs"] < patience:
        epoch = state["epoch"]
        rng = np.random.default_rng(seed + epoch)
        model.train()
        losses = []
        t0 = time.time()
        groups = [it[0] for it in train_items] if group_items else None
        idx_batches = list(batches(len(train_items), batch_size, rng, groups))
        it = idx_batches
        if progress:
            from tqdm import tqdm

            it = tqdm(idx_batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
        for idx in it:
            loss = loss_fn(model, make_batch([train_items[i] for i in idx]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
        metrics = eval_fn(model)
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), **metrics, "seconds": time.time() - t0}
        state["history"].append(row)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        log(json.dumps(row))
        state["epoch"] = epoch + 1
        if metrics[monitor] < state["best"]:
            state.update(best=metrics[monitor], best_epoch=epoch + 1, bad_epochs=0)
            model.save_pretrained(out / "best", extra={"best_epoch": epoch + 1, "best_" + monitor: metrics[monitor]})
        else:
            state["bad_epochs"] += 1
        _save_checkpoint(out / "checkpoint", model, optimizer, state)
    return {"best": state["best"], "best_epoch": state["best_epoch"], "history": state["history"]}


def train_oat(train: Sequence[Display], valid: Sequence[Display], out_dir: str | Path,
              config: OATConfig | None = None, epochs: int = 30, batch_size: int = 16, lr: float = 1e-4,
              patience: int = 5, seed: int = 0, max_len: int = 80, progress: bool = True, log: Callable = print) -> dict:
    """Train OAT on displays' scanpaths; select the epoch with the lowest validation behavioural delta."""
    torch.manual_seed(seed)
    config = config or OATConfig(appearance=train[0].crops is not None)
    model = OAT(config)
    items = examples(train, max_len)
    result = fit_minimal(model, items, lambda its: collate(train, its, config.appearance), oat_loss,
                         lambda m: validation_metrics(m, valid), out_dir, epochs=epochs, batch_size=batch_size,
                         lr=lr, patience=patience, seed=seed, progress=progress, log=log, group_items=True)
    return result
