"""Training OAT (official ``transformerLightning.py``: teacher-forced cross-entropy, Adam 1e-4, gradient
clipping 1.0, early stopping on the validation behavioural delta of greedy scanpaths).

Runs through the shared engine ``seqverse.core.train.fit`` (checkpoint/resume in OUT/checkpoint,
metrics in OUT/metrics.jsonl, the best evaluated weights in OUT/best). Batches hold whole displays
(all people's scanpaths of a display), so each display's encoder runs once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .data import collate, examples, oat_loss, shard_displays
from .displays import Display
from .metrics import behavioural_delta, mean_behaviour, sequence_score
from .model import OAT, OATConfig


def predict_objects(model, displays: Sequence[Display], sample: bool = False, n: int = 1, batch_size: int = 16,
                    seed: int = 0, temperature: float = 1.0) -> list[list[list[int]]]:
    """Scanpaths (object indices) per display: greedy (n=1) or ``n`` sampled ones (at ``temperature``)."""
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
        out.append(model.generate(batch, sample=True, generator=gen, temperature=temperature))
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


class DisplayBatches:
    """Epoch-seeded batches of ``displays_per_batch`` whole displays (a re-iterable for ``fit``)."""

    def __init__(self, items: Sequence, make_batch: Callable, displays_per_batch: int, seed: int = 0):
        self.items, self.make_batch, self.per, self.seed, self.epoch = items, make_batch, displays_per_batch, seed, 0
        self.groups: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            self.groups.setdefault(it[0], []).append(i)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.groups) // self.per)

    def __iter__(self):
        order = np.random.default_rng(self.seed + self.epoch).permutation(list(self.groups))
        for k in range(0, len(order), self.per):
            idx = [i for g in order[k : k + self.per] for i in self.groups[int(g)]]
            yield self.make_batch([self.items[i] for i in idx])


def fit_displays(model, items: Sequence, make_batch: Callable, loss_fn: Callable, eval_fn: Callable,
                 out_dir: str | Path, epochs: int = 30, displays_per_batch: int = 4, lr: float = 1e-4,
                 patience: int = 5, seed: int = 0, progress: bool = True, extra: dict | None = None,
                 shard_fn: Callable | None = None, loss_is_part: bool = False) -> dict:
    """Adam (official), clip 1.0, evaluate every epoch, early stopping on the validation delta; OUT/best
    gets the selected weights with config.json (``from_pretrained`` loads it). ``shard_fn`` /
    ``loss_is_part``: how batches split over data-parallel ranks and whether ``loss_fn`` returns this
    rank's part of the global loss (see ``seqverse.core.train.fit``)."""
    from seqverse.core.train import TrainConfig, fit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(epochs=epochs, lr=lr, optimizer="adam", clip_norm=1.0, seed=seed, out_dir=str(out),
                         monitor="valid_delta", monitor_mode="min", patience=patience, restore_best=True,
                         progress=progress, progress_desc="oat train", checkpoint_seconds=300, log_every=10,
                         loss_is_part=loss_is_part)
    result = fit(model, DisplayBatches(items, make_batch, displays_per_batch, seed), loss_fn, config, eval_fn=eval_fn,
                 shard_fn=shard_fn)
    evals = [h for h in result.history if "valid_delta" in h]
    best_epoch = next((k + 1 for k, h in enumerate(evals) if h["valid_delta"] == result.best_metric), None)
    model.save_pretrained(out / "best", extra={"best_epoch": best_epoch, "best_valid_delta": result.best_metric,
                                               **(extra or {})})
    return {"best": result.best_metric, "best_epoch": best_epoch, "history": evals,
            "stopped_early": result.stopped_early, "steps": result.steps_done, "losses": result.losses()}


def train_oat(train: Sequence[Display], valid: Sequence[Display], out_dir: str | Path,
              config: OATConfig | None = None, epochs: int = 30, displays_per_batch: int = 4, lr: float = 1e-4,
              patience: int = 5, seed: int = 0, max_len: int = 80, progress: bool = True,
              init: OAT | None = None) -> dict:
    """Train OAT on displays' scanpaths; select the epoch with the lowest validation behavioural delta.

    ``init``: a trained model to continue from (its weights and configuration), e.g. onto more data."""
    torch.manual_seed(seed)
    if init is not None:
        config = init.config
        model = OAT(config, position_table=init.position_table)
        model.load_state_dict(init.state_dict())
    else:
        config = config or OATConfig(appearance=train[0].crops is not None)
        model = OAT(config)
    items = examples(train, min(max_len, config.max_len))
    from seqverse.core.train import global_sum

    return fit_displays(model, items, lambda its: collate(train, its, config.appearance),
                        lambda m, b: oat_loss(m, b, count=global_sum),  # this rank's part (one process: the mean)
                        lambda m: validation_metrics(m, valid), out_dir, epochs=epochs,
                        displays_per_batch=displays_per_batch, lr=lr, patience=patience, seed=seed, progress=progress,
                        shard_fn=shard_displays, loss_is_part=True)
