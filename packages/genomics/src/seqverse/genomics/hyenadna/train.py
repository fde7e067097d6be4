"""Pretraining: next-nucleotide prediction with the sequence-length warm-up of HyenaDNA Sec. 3.2.

The warm-up trains at short lengths first and doubles the length stage by stage up to the target
context, keeping tokens per step fixed (batch = tokens / length), which the paper found stabilises
long-context training and cuts its time. The learning rate follows a linear warm-up then a cosine
decay; AdamW with weight decay; gradient clipping; optional gradient checkpointing.

The loop is :func:`seqverse.core.train.fit` (the shared engine): it owns the optimizer steps,
clipping, checkpoints (``<out>/checkpoint/``, safetensors, resumed by running the same command
again), the metrics log and data parallelism under ``torchrun``. This module supplies the model's
AdamW param groups, the schedule (:meth:`PretrainConfig.lr_at`) and the batches: batch i is drawn
from ``numpy.random.default_rng([seed, i])``, so a resumed run, a data-parallel run and a second
model trained later (the benchmark's same-size Transformer) all see exactly the same batches.
The output directory is also a model directory (``config.json`` + ``model.safetensors``) with
``trainer_state.json`` (step, tokens, seconds, recipe) and ``log.jsonl`` (the curves).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqverse.genomics.hyenadna.data import Genome, sample_batch
from seqverse.genomics.hyenadna.model import HyenaDNAConfig, HyenaDNAForCausalLM
from seqverse.genomics.hyenadna.score import LN2, score_ids


@dataclass
class PretrainConfig:
    steps: int = 4000
    seq_len: int = 1024  # final training context
    min_seq_len: int = 256  # first warm-up stage; lengths double up to seq_len
    warmup_fraction: float = 0.1  # share of steps spent in the length warm-up stages
    tokens_per_step: int = 8192  # kept fixed through the warm-up (batch = tokens / length)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    lr_warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    reverse_complement: bool = True
    seed: int = 0
    checkpoint_seconds: float = 180.0
    eval_every: int = 200
    stages: list = field(default_factory=list)  # filled in: [(first_step, seq_len), ...]

    def __post_init__(self):
        if self.seq_len < self.min_seq_len or self.min_seq_len < 2:
            raise ValueError(f"need 2 <= min_seq_len <= seq_len, got {self.min_seq_len} and {self.seq_len}")
        lengths = []
        n = self.seq_len
        while n > self.min_seq_len:
            lengths.append(n)
            n //= 2
        lengths.append(max(n, self.min_seq_len))
        lengths = lengths[::-1]  # short to long
        warm = int(self.steps * self.warmup_fraction) if len(lengths) > 1 else 0
        per = warm // max(1, len(lengths) - 1)
        self.stages = [[i * per, length] for i, length in enumerate(lengths[:-1])] + [[warm, lengths[-1]]]

    def seq_len_at(self, step: int) -> int:
        """Training length at ``step`` (the warm-up schedule)."""
        length = self.stages[0][1]
        for first, n in self.stages:
            if step >= first:
                length = n
        return length

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``lr_warmup_steps`` (at most a tenth of the run), then cosine to ``min_lr_ratio * lr``."""
        warm = max(1, min(self.lr_warmup_steps, self.steps // 10))
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, self.steps - warm))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def adamw_groups(model, pretrain: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW (betas 0.9/0.95) with weight decay on matrices only (not norms, biases or the implicit filters)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "implicit_filter" not in name else no_decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": pretrain.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=pretrain.lr,
        betas=(0.9, 0.95),
    )


def pretrain_batch(genome: Genome, cfg: PretrainConfig, step: int):
    """The ``(inputs, labels)`` of ``step``: ``tokens_per_step // seq_len_at(step)`` windows from ``rng([seed, step])``."""
    length = cfg.seq_len_at(step)
    return sample_batch(genome, max(1, cfg.tokens_per_step // length), length, np.random.default_rng([cfg.seed, step]),
                        cfg.reverse_complement)


def load_or_create(out_dir: str | Path, model_config: HyenaDNAConfig | None) -> HyenaDNAForCausalLM:
    """The model of a run in ``out_dir`` (its saved config; the engine restores the weights) or a new one."""
    out_dir = Path(out_dir)
    if (out_dir / "checkpoint" / "trainer_state.json").is_file() or (out_dir / "checkpoint.old").is_dir():
        return HyenaDNAForCausalLM.from_pretrained(out_dir)
    if model_config is None:
        raise FileNotFoundError(f"{out_dir}: nothing to resume and no model config given")
    return HyenaDNAForCausalLM(model_config)


def pretrain(model: HyenaDNAForCausalLM, out_dir: str | Path | None, genome: Genome, val: Genome | None, cfg: PretrainConfig,
             progress: bool = True, max_seconds: float | None = None, stop_step: int | None = None, mesh=None,
             loss_fn=None):
    """Pre-train ``model`` with the engine up to ``cfg.steps`` (or ``stop_step``), resuming from
    ``out_dir/checkpoint``; evaluates bits/base on ``val`` every ``cfg.eval_every`` steps and at the
    end. ``mesh`` (:func:`seqverse.core.train.make_mesh`): data parallelism over its rows and, with
    ``sp_size`` > 1, every window split over the SP group (:mod:`seqverse.core.parallel.hyena`);
    ``loss_fn`` replaces the next-token loss. Returns the engine's :class:`~seqverse.core.train.FitResult`."""
    from seqverse.core.parallel.hyena import parallelize_hyena, sequence_parallel_off
    from seqverse.core.train import TrainConfig, fit

    mixer = model.config.mixer
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and _is_rank0():
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "config.json").is_file():
            model.save_pretrained(out)
    sp = mesh is not None and mesh.sp_size > 1
    if sp:  # every window is split over the SP group (Hyena's long convolutions exact across the blocks)
        if mixer != "hyena":
            raise ValueError("sequence parallelism is for the Hyena mixer")
        if any(length % mesh.sp_size for _, length in cfg.stages):
            raise ValueError(f"every training length {[n for _, n in cfg.stages]} must divide into {mesh.sp_size} ranks")
        parallelize_hyena(model, mesh.sp_group)

    def next_token_loss(m, batch):
        inputs, labels = batch
        extra = {"seq_len": labels.shape[1], "batch_tokens": labels.numel()}
        if not sp:
            return m.loss(inputs, labels), extra
        n = labels.shape[1] // mesh.sp_size  # this rank's block; its part of the mean over all tokens
        block = slice(mesh.sp_rank * n, (mesh.sp_rank + 1) * n)
        logits = m(inputs[:, block])
        part = F.cross_entropy(logits.flatten(0, 1), labels[:, block].flatten(), ignore_index=-100, reduction="sum")
        return part / labels.numel(), extra

    def eval_fn(m):
        with sequence_parallel_off(m):
            return {f"{mixer}_val_bits_per_base": bits_per_base(m, val, cfg.seq_len)}

    engine = TrainConfig(steps=cfg.steps, lr=cfg.lr, clip_norm=cfg.grad_clip, seed=None, out_dir=str(out) if out else None,
                         checkpoint_seconds=cfg.checkpoint_seconds, eval_every=cfg.eval_every, progress=progress,
                         progress_desc=f"pretrain {mixer}", stop_step=stop_step, max_seconds=max_seconds)
    result = fit(model, lambda step: pretrain_batch(genome, cfg, step), loss_fn or next_token_loss, engine,
                 eval_fn=eval_fn if val is not None else None, optimizer=lambda m: adamw_groups(m, cfg),
                 schedule=lambda step: cfg.lr_at(step) / cfg.lr, mesh=mesh)
    if out is not None and _is_rank0():
        _write_run(model, out, cfg, result)
    return result


def _is_rank0() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def _write_run(model, out: Path, cfg: PretrainConfig, result) -> None:
    """``config.json`` + ``model.safetensors``, ``trainer_state.json`` and ``log.jsonl`` (the curves,
    one record per step: seq_len, lr, ``<mixer>_loss_bits``, ``<mixer>_val_bits_per_base``, tokens)."""
    mixer = model.config.mixer
    model.save_pretrained(out)
    records, tokens = [], 0
    for h in result.history:
        tokens += int(h.get("batch_tokens", 0))
        record = {"step": h["step"], "seq_len": int(h.get("seq_len", cfg.seq_len_at(h["step"] - 1))), "lr": h["lr"],
                  f"{mixer}_loss_bits": h["loss"] / LN2, "tokens": tokens}
        if f"{mixer}_val_bits_per_base" in h:
            record[f"{mixer}_val_bits_per_base"] = h[f"{mixer}_val_bits_per_base"]
        records.append(record)
    previous = json.loads((out / "trainer_state.json").read_text()) if (out / "trainer_state.json").is_file() else {}
    state = {"step": result.steps_done, "tokens": tokens, "elapsed": round(previous.get("elapsed", 0.0) + result.seconds, 2),
             "pretrain": asdict(cfg)}
    for name, text in (("log.jsonl", "".join(json.dumps(r) + "\n" for r in records)),
                       ("trainer_state.json", json.dumps(state, indent=2) + "\n")):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out / name)


def bits_per_base(model, genome: Genome, context: int | None = None, batch_size: int = 16) -> float:
    """Mean bits per base of ``genome`` under ``model`` (windowed; see :mod:`.score`)."""
    total, n = 0.0, 0
    for ids in genome.ids:
        lp = score_ids(model, ids, context, batch_size=batch_size)
        total += lp.sum()
        n += len(lp)
    return -total / n / LN2
