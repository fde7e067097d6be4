"""One training loop for every seqverse system: a system supplies model, data and loss; ``fit`` owns the rest.

    from seqverse.core.train import TrainConfig, fit
    result = fit(model, train_data, loss_fn, TrainConfig(steps=1000, lr=3e-4), eval_fn=evaluate)

The loop: optimiser (AdamW/Adam/SGD, or the system's own param groups) and a learning-rate
schedule (constant, linear or cosine after a linear warm-up, or the system's own function of the
step), gradient accumulation, clipping, mixed precision on CUDA (bf16, or fp16 with a grad
scaler), checkpoint + resume (:mod:`.checkpoint`), evaluation and early stopping on a monitored
metric with the best weights restored, seeds, a progress bar, and a JSON-lines metrics log
(``metrics.jsonl``; TensorBoard event files too when ``tensorboard`` is installed).

Data parallelism is torch's :class:`~torch.nn.parallel.DistributedDataParallel` (with
``find_unused_parameters``, so parameters that get no gradient in a step are fine) over the
process group ``torchrun`` starts; the loss is wrapped in a module so that ``loss_fn`` may call any
method of the model and DDP still sees one forward. ``config.batch_size`` is the *global* batch:
each data-parallel rank takes its share of every batch, and its loss is weighted by that share,
so a run on N processes follows the single-process run step by step (per-example mean losses;
token-mean losses with unequal token counts per rank follow it only approximately). With a
sequence-parallel mesh (:mod:`.mesh`) ``loss_fn`` returns each SP rank's part of its row's loss
(the parts summing to the loss) and the engine scales by the SP size for the DDP average.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from seqverse.core.clikit import atomic_path
from seqverse.core.train import checkpoint as ckpt
from seqverse.core.train.mesh import Mesh, init_distributed, make_mesh


@dataclass
class TrainConfig:
    """What the engine needs to know about a run (every field has a working default)."""

    steps: int = 100  # optimizer steps (ignored when epochs is set)
    epochs: int | None = None  # passes over a sized train_data instead of steps
    batch_size: int = 32  # global batch for a Dataset (split over data-parallel ranks)
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # 'adamw' | 'adam' | 'sgd'
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9  # sgd
    schedule: str = "constant"  # 'constant' | 'cosine' | 'linear' (after the warm-up)
    warmup: float = 0  # linear warm-up: a fraction of the steps (< 1) or a number of steps
    min_lr_ratio: float = 0.0  # cosine/linear decay ends at lr * min_lr_ratio
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_norm: float | None = None  # clip the global gradient norm
    amp: str = "auto"  # 'auto' (bf16, else fp16, on CUDA only) | 'bf16' | 'fp16' | 'off'
    device: str = "auto"  # 'auto' (CUDA when present) | 'cpu' | 'cuda'
    seed: int | None = 0  # None: leave the global RNGs as the caller set them
    out_dir: str | None = None  # None: no files
    checkpoint_every: int = 0  # steps; 0: only at the end (and by checkpoint_seconds)
    checkpoint_seconds: float | None = None  # also checkpoint when this long has passed
    resume: bool = True  # continue from out_dir/checkpoint when one is there
    eval_every: int = 0  # steps; 0: after every epoch (epochs set) or at the end
    log_every: int = 1  # steps between metrics.jsonl / progress-bar updates
    monitor: str | None = None  # eval metric for early stopping and the best weights
    monitor_mode: str = "min"  # 'min' | 'max'
    patience: int | None = None  # evaluations without improvement before stopping
    restore_best: bool = False  # load the best evaluated weights at the end
    progress: bool = True  # tqdm bar (rank 0)
    progress_desc: str = "train"
    shuffle: bool = True  # Dataset: reshuffle every epoch (seeded)
    drop_last: bool = False
    num_workers: int = 0
    stop_step: int | None = None  # stop (checkpointed) at this step; the schedule stays that of `steps`
    max_seconds: float | None = None  # stop (checkpointed) after this long
    find_unused_parameters: bool = True
    stop_on_signal: bool = True  # SIGINT/SIGTERM: finish the step, checkpoint, return (result.interrupted)
    loss_is_part: bool = False  # loss_fn returns this rank's part of the global loss (normalised with global_sum)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one record per step (+ eval metrics)
    best_metric: float | None = None
    best_step: int | None = None
    steps_done: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (checkpointed; run again to resume)

    def losses(self) -> list[float]:
        return [h["loss"] for h in self.history if "loss" in h]


def lr_factor(config: TrainConfig, step: int, total: int) -> float:
    """The multiplier of each param group's base lr before optimizer step ``step`` (0-based)."""
    warm = int(config.warmup * total) if 0 < config.warmup < 1 else int(config.warmup)
    if step < warm:
        return (step + 1) / warm
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    low = config.min_lr_ratio
    if config.schedule == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "linear":
        return low + (1 - low) * (1 - progress)
    raise ValueError(f"unknown schedule {config.schedule!r}: use constant, cosine or linear")


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: use adamw, adam or sgd")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------- data


def batch_len(batch) -> int | None:
    """The leading (batch) dimension of a batch: of its first tensor, else of its first list."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else None
    if isinstance(batch, dict):
        values = list(batch.values())
    elif isinstance(batch, tuple | list):
        values = list(batch)
        if values and not isinstance(values[0], torch.Tensor | dict | tuple | list):
            return len(values)  # a list of examples (strings, ids)
    else:
        return None
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim():
            return v.shape[0]
    for v in values:
        n = batch_len(v)
        if n is not None:
            return n
    return None


def slice_batch(batch, start: int, stop: int, n: int):
    """Rows ``start:stop`` of every tensor/list in ``batch`` whose leading dimension is ``n``."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() and batch.shape[0] == n else batch
    if isinstance(batch, dict):
        return {k: slice_batch(v, start, stop, n) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        if len(batch) == n and batch and not isinstance(batch[0], torch.Tensor | dict | tuple | list):
            return type(batch)(batch[start:stop])
        items = [slice_batch(v, start, stop, n) for v in batch]
        if hasattr(batch, "_fields"):  # namedtuple
            return type(batch)(*items)
        return type(batch)(items)
    return batch


def shard_batch(batch, rank: int, world: int):
    """This data-parallel rank's contiguous share of a global batch and its weight (share / total).

    A rank whose share is empty (a last batch smaller than the world) gets rank 0's rows at weight
    0, so that every rank still runs forward and backward.
    """
    if world == 1:
        return batch, 1.0
    n = batch_len(batch)
    if n is None:
        raise ValueError("cannot split this batch over data-parallel ranks: it has no tensor or list of examples")
    bounds = [-(-n * r // world) for r in range(world + 1)]  # ceil: the first ranks take the extra rows
    start, stop = bounds[rank], bounds[rank + 1]
    if stop == start:
        return slice_batch(batch, 0, 1, n), 0.0
    return slice_batch(batch, start, stop, n), (stop - start) / n


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Index lists of this rank's share of each global batch of a seeded per-epoch permutation.

    Unlike ``DistributedSampler`` (which deals examples round-robin and pads the last batch with
    repeats) the union over ranks of step k's shares is exactly the single-process batch k, for
    any dataset length; :func:`fit` weights each share by its size.
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.n))
        batches = [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __iter__(self):
        for batch in self.global_batches():
            yield shard_batch(batch, self.rank, self.world)[0]

    def __len__(self) -> int:
        return len(self.global_batches())


class _Weighted:
    """A DataLoader whose batches carry their data-parallel weight (share / global batch)."""

    def __init__(self, loader, sampler: GlobalBatchSampler):
        self.loader, self.sampler = loader, sampler

    def __iter__(self):
        weights = [shard_batch(b, self.sampler.rank, self.sampler.world)[1] for b in self.sampler.global_batches()]
        return zip(self.loader, weights, strict=True)

    def __len__(self):
        return len(self.sampler)


class _LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a module, so DDP wraps one forward whatever methods it calls."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        out = self.loss_fn(self.model, batch)
        return out if isinstance(out, tuple) else (out, {})


# ----------------------------------------------------------------------------------------- loop


class _Log:
    """metrics.jsonl (+ TensorBoard) on rank 0; the file is cut back to the resumed step."""

    def __init__(self, out_dir: Path | None, start_step: int, enabled: bool):
        self.path = self.tb = None
        if out_dir is None or not enabled:
            return
        self.path = out_dir / "metrics.jsonl"
        if self.path.is_file():
            kept = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= start_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            self.tb = None

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, int | float):
                    self.tb.add_scalar(k, v, record["step"])

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _autocast(config: TrainConfig, device: torch.device):
    if config.amp == "off" or device.type != "cuda":
        if config.amp in ("bf16", "fp16") and device.type != "cuda":
            raise ValueError(f"amp={config.amp!r} needs CUDA; use amp='auto' or 'off' on {device.type}")
        return None
    if config.amp == "fp16" or (config.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fit(
    model: nn.Module,
    train_data,
    loss_fn: Callable,
    config: TrainConfig | None = None,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
    collate_fn: Callable | None = None,
    *,
    schedule: Callable[[int], float] | None = None,
    scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    mesh: Mesh | None = None,
    shard_fn: Callable | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    initial_best: float | None = None,
) -> FitResult:
    """Train ``model`` in place; returns its :class:`FitResult`.

    train_data: a map-style ``Dataset`` (batched by the engine, ``collate_fn``), a re-iterable of
      ready global batches (its ``set_epoch(e)``, if any, is called before each pass; one with
      ``state_dict()``/``load_state_dict()`` - JSON-able, the position after the batches handed out -
      is checkpointed and resumes itself instead of being replayed), or a function
      ``step -> batch`` of the micro-batch index (exact resume and identical batches for models
      trained side by side).
    loss_fn(model, batch): the loss tensor, or ``(loss, {name: float})`` for extra logged values.
    eval_fn(model): ``{metric: float}``, run every ``eval_every`` steps (all ranks; rank 0's values count).
    optimizer(model): an optimizer for systems with param groups (else from the config).
    schedule(step): a system's own lr multiplier (replaces ``config.schedule``); scheduler(opt): a
      torch LR scheduler stepped after every optimizer step (fast-forwarded on resume).
    mesh: the DP x SP mesh (default: data parallel over every process of the initialised group).
    shard_fn(batch, dp_rank, dp_size) -> (local batch, weight): how ready batches split over DP ranks.
    on_step(step, record): called after every optimizer step (rank 0 and the others alike).
    initial_best: the monitored value to beat (e.g. an earlier training stage's best).
    """
    config = config or TrainConfig()
    if config.grad_accum < 1:
        raise ValueError(f"grad_accum must be >= 1, got {config.grad_accum}")
    if config.monitor_mode not in ("min", "max"):
        raise ValueError(f"monitor_mode must be 'min' or 'max', got {config.monitor_mode!r}")
    if (config.patience is not None or config.restore_best) and (eval_fn is None or config.monitor is None):
        raise ValueError("early stopping and restore_best need an eval_fn and config.monitor")
    if mesh is None:
        init_distributed(None if config.device == "auto" else config.device)  # torchrun: join its group
        mesh = make_mesh()
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    device = _resolve_device(config)
    if config.seed is not None:
        seed_everything(config.seed)
    model.to(device)
    amp_dtype = _autocast(config, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    # data
    loader, sampler, step_fn = None, None, None
    if isinstance(train_data, torch.utils.data.Dataset) and hasattr(train_data, "__len__"):
        sampler = GlobalBatchSampler(len(train_data), config.batch_size, mesh.dp_rank, mesh.dp_size, config.shuffle,
                                     config.seed or 0, config.drop_last)
        # its own generator: creating an iterator must not draw from the global RNG (exact resume)
        dl = torch.utils.data.DataLoader(train_data, batch_sampler=sampler, collate_fn=collate_fn,
                                         num_workers=config.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed or 0))
        loader = _Weighted(dl, sampler)
    elif callable(train_data):
        step_fn = train_data
    else:
        loader = train_data
    micro_per_epoch = len(loader) if loader is not None and hasattr(loader, "__len__") else None
    if config.epochs is not None:
        if micro_per_epoch is None:
            raise ValueError("epochs needs a sized train_data (a Dataset or a list of batches); give steps instead")
        steps_per_epoch = max(1, math.ceil(micro_per_epoch / config.grad_accum))
        total = config.epochs * steps_per_epoch
    else:
        steps_per_epoch = math.ceil(micro_per_epoch / config.grad_accum) if micro_per_epoch else None
        total = config.steps
    if total < 1:
        raise ValueError(f"nothing to train: {total} steps (give steps >= 1 or epochs >= 1)")
    eval_every = config.eval_every or (steps_per_epoch if config.epochs is not None else total)

    # optimizer, schedule, wrapping
    opt = optimizer(model) if optimizer is not None else build_optimizer(model, config)
    for group in opt.param_groups:
        group.setdefault("initial_lr", group["lr"])
    out_dir = Path(config.out_dir) if config.out_dir else None
    ckpt_dir = out_dir / "checkpoint" if out_dir else None
    state = {}
    found = ckpt.find(ckpt_dir) if (ckpt_dir is not None and config.resume) else None
    if found is not None:
        state = ckpt.load(found, model, opt)
    step = state.get("step", 0)
    history = state.get("history", [])
    best_metric, best_step = state.get("best_metric"), state.get("best_step")
    if best_metric is None:
        best_metric = initial_best
    bad_evals = state.get("bad_evals", 0)
    stopped_early = state.get("stopped_early", False)
    seconds_before = history[-1].get("seconds", 0.0) if history else 0.0
    micro = state.get("micro", 0)  # micro-batches consumed (index into the data stream)
    sched = scheduler(opt) if scheduler is not None else None
    if sched is not None and step:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(step):
                sched.step()
    best_state = None
    if config.restore_best and out_dir is not None and (out_dir / "best" / "model.safetensors").is_file() and found is not None:
        from safetensors.torch import load_file

        best_state = load_file(str(out_dir / "best" / "model.safetensors"))
    global_bn = False
    if mesh.distributed and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        if device.type == "cuda":  # batch statistics over the global batch, as one process computes them
            _sync_batchnorm(model)
        else:  # SyncBatchNorm needs CUDA: the same statistics from differentiable all-reduces of sums
            from seqverse.core.train.batchnorm import convert_batchnorm

            convert_batchnorm(model, mesh.grad_group)
            global_bn = True
    wrapped = _LossModule(model, loss_fn)
    if mesh.distributed:
        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        wrapped = nn.parallel.DistributedDataParallel(
            wrapped, process_group=mesh.grad_group, find_unused_parameters=config.find_unused_parameters, **ddp_kwargs
        )
    loss_scale = mesh.sp_size  # DDP averages over dp*sp ranks; SP parts must be summed
    global _ACTIVE_MESH
    _ACTIVE_MESH = mesh

    def micro_batches():
        """(batch, weight) from the current position ``micro`` on, across epochs."""
        nonlocal micro
        if step_fn is not None:
            while True:
                batch = step_fn(micro)
                yield shard_fn(batch, mesh.dp_rank, mesh.dp_size) if shard_fn else shard_batch(batch, mesh.dp_rank, mesh.dp_size)
        epoch, skip = (micro // micro_per_epoch, micro % micro_per_epoch) if micro_per_epoch else (0, micro)
        if "data_state" in state and hasattr(loader, "load_state_dict"):  # the stream resumes itself
            loader.load_state_dict(state["data_state"])
            skip = 0
        while True:
            if sampler is not None:
                sampler.set_epoch(epoch)
            elif hasattr(loader, "set_epoch"):  # a system's own epoch-seeded batches
                loader.set_epoch(epoch)
            it = iter(loader)
            n = 0
            for item in it:
                if n < skip:
                    n += 1
                    continue
                n += 1
                if sampler is not None:
                    yield item
                else:
                    yield shard_fn(item, mesh.dp_rank, mesh.dp_size) if shard_fn else shard_batch(item, mesh.dp_rank, mesh.dp_size)
            if n == 0:
                raise ValueError("train_data yielded no batches")
            epoch, skip = epoch + 1, 0

    def evaluate() -> dict:
        model.eval()
        with torch.no_grad():
            metrics = eval_fn(model)
        model.train()
        if mesh.distributed:
            box = [metrics]
            dist.broadcast_object_list(box, src=0, group=mesh.grad_group)
            metrics = box[0]
        return {k: float(v) for k, v in metrics.items()}

    def save_checkpoint():
        if ckpt_dir is None or not rank0:
            return
        ckpt.save(ckpt_dir, model.state_dict(), opt, {
            "step": step, "micro": micro, "history": history, "best_metric": best_metric, "best_step": best_step,
            "bad_evals": bad_evals, "stopped_early": stopped_early,
            **({"data_state": loader.state_dict()} if hasattr(loader, "state_dict") else {}), "config": _jsonable_config(config), "world": mesh.world,
        })

    log = _Log(out_dir, step, rank0)
    if out_dir is not None and rank0:
        out_dir.mkdir(parents=True, exist_ok=True)
    bar = None
    if config.progress and rank0:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=config.progress_desc, unit="step", file=sys.stderr)
    began = last_save = time.time()
    stop_at = min(total, config.stop_step) if config.stop_step is not None else total
    if stopped_early:  # resumed after early stopping: nothing left to do
        stop_at = step
    stream = micro_batches()
    interrupted = False

    def _on_signal(signum, frame):  # finish the step, checkpoint, stop
        nonlocal interrupted
        interrupted = True

    handlers = {}
    if config.stop_on_signal and threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    model.train()
    try:
        while step < stop_at:
            factor = schedule(step) if schedule is not None else lr_factor(config, step, total)
            for group in opt.param_groups:
                if sched is None:
                    group["lr"] = group["initial_lr"] * factor
            step_loss, extras = 0.0, {}
            for k in range(config.grad_accum):
                batch, weight = next(stream)
                if config.loss_is_part:  # the parts already carry the global normalisation: add them up
                    weight = 1.0 if weight > 0 else 0.0
                micro += 1
                batch = to_device(batch, device)
                sync = k == config.grad_accum - 1 or not mesh.distributed
                ctx = contextlib.nullcontext() if sync else wrapped.no_sync()
                with ctx:
                    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                        loss, extra = wrapped(batch)
                    scaled = loss * (weight * mesh.dp_size * loss_scale / config.grad_accum)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                step_loss += float(loss.detach()) * weight / config.grad_accum
                for name, v in extra.items():
                    extras[name] = extras.get(name, 0.0) + float(v) / config.grad_accum
            if scaler is not None:
                scaler.unscale_(opt)
            grad_norm = None
            if config.clip_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm))
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            lr_now = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step()
            step += 1
            if mesh.distributed:  # the logged loss: the global mean, as one process would see it
                t = torch.tensor([step_loss], dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
                dist.all_reduce(t, group=mesh.grad_group)  # DP shares are weighted, SP parts add up
                step_loss = float(t)
            record = {"step": step, "loss": step_loss, "lr": lr_now} | extras
            record["seconds"] = round(seconds_before + time.time() - began, 2)  # wall clock over resumes
            if grad_norm is not None:
                record["grad_norm"] = grad_norm
            evaluated = eval_fn is not None and (step % eval_every == 0 or step == total)
            if evaluated:
                metrics = evaluate()
                record |= metrics
                if config.monitor is not None:
                    if config.monitor not in metrics:
                        raise KeyError(f"eval_fn returned {sorted(metrics)}, not the monitored {config.monitor!r}")
                    value = metrics[config.monitor]
                    better = best_metric is None or (value < best_metric if config.monitor_mode == "min" else value > best_metric)
                    if better:
                        best_metric, best_step, bad_evals = value, step, 0
                        if config.restore_best:
                            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                            if out_dir is not None and rank0:
                                _save_weights(best_state, out_dir / "best")
                    else:
                        bad_evals += 1
                    if config.patience is not None and bad_evals >= config.patience:
                        stopped_early = True
                    record["best_step"] = best_step  # == step: this evaluation is the best so far
            history.append(record)
            if rank0 and (step % config.log_every == 0 or step == total or evaluated):
                log.write(record)
            if on_step is not None:
                on_step(step, record)
            if bar is not None:
                bar.update(1)
                if step % config.log_every == 0:
                    shown = {k: f"{v:.4g}" for k, v in record.items()
                             if k not in ("step", "lr", "seconds", "best_step") and isinstance(v, int | float)}
                    bar.set_postfix(shown, refresh=False)
            due = config.checkpoint_every and step % config.checkpoint_every == 0
            timed = config.checkpoint_seconds is not None and time.time() - last_save > config.checkpoint_seconds
            if due or timed:
                save_checkpoint()
                last_save = time.time()
            if stopped_early:
                break
            out_of_time = config.max_seconds is not None and time.time() - began > config.max_seconds
            if _agree(out_of_time or interrupted, mesh):
                break
    finally:
        _ACTIVE_MESH = None  # global_sum / gather_rows outside a fit: this process alone
        if global_bn:  # plain BatchNorms again (same tensors), which need no other rank
            from seqverse.core.train.batchnorm import restore_batchnorm

            restore_batchnorm(model)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
        log.close()
    save_checkpoint()
    if config.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(history=history, best_metric=best_metric, best_step=best_step, steps_done=step,
                     stopped_early=stopped_early, seconds=time.time() - began, interrupted=interrupted)


_ACTIVE_MESH: Mesh | None = None


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 (``counts`` rows from each rank); backward: all-reduce, keep own rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group, counts: list[int], start: int) -> torch.Tensor:
        padded = torch.zeros((max(counts), *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous(), group=group)
        ctx.group, ctx.start, ctx.n = group, start, x.shape[0]
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.start : ctx.start + ctx.n], None, None, None


def gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every data-parallel rank's rows of ``x`` in rank order (differentiable) and where this rank's
    rows start: for losses that compare each example with the whole global batch (in-batch
    negatives), which must see the same batch on N ranks as on one. ``(x, 0)`` on one process."""
    mesh = _ACTIVE_MESH
    if mesh is None or mesh.dp_size == 1:
        return x, 0
    group = mesh.grad_group if mesh.sp_size == 1 else mesh.dp_group
    n = torch.tensor([x.shape[0]], device=x.device)
    counts = [torch.zeros_like(n) for _ in range(dist.get_world_size(group))]
    dist.all_gather(counts, n, group=group)
    counts = [int(c) for c in counts]
    start = sum(counts[: dist.get_rank(group)])
    return _GatherRows.apply(x, group, counts, start), start


def _sync_batchnorm(model: nn.Module) -> None:
    """Replace every BatchNorm of ``model`` (in place, same parameters and buffers) with SyncBatchNorm."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _sync_batchnorm(child)


def global_sum(value) -> float:
    """``value`` summed over every rank of the running :func:`fit` (itself on one process): the
    global count a loss divides by when ``TrainConfig.loss_is_part`` (e.g. tokens that are not
    padding), so that N data-parallel ranks' parts add up to the single-process loss exactly."""
    value = float(value)
    mesh = _ACTIVE_MESH
    if mesh is None or not mesh.distributed:
        return value
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, group=mesh.grad_group)
    return float(t)


def _agree(flag: bool, mesh: Mesh) -> bool:
    """True on every rank when it is true on any (a stop must not split the ranks)."""
    if not mesh.distributed:
        return flag
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=mesh.grad_group)
    return bool(t.item())


def _jsonable_config(config: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(config), default=str))


def _save_weights(state: dict, directory: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(directory / "model.safetensors") as tmp:  # 0644, not safetensors' 0600
        save_file({k: v.contiguous() for k, v in state.items()}, tmp)
