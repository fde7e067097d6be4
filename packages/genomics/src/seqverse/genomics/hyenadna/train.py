"""Pretraining: next-nucleotide prediction with the sequence-length warm-up of HyenaDNA Sec. 3.2.

The warm-up trains at short lengths first and doubles the length stage by stage up to the target
context, keeping tokens per step fixed (batch = tokens / length), which the paper found stabilises
long-context training and cuts its time. The learning rate follows a linear warm-up then a cosine
decay; AdamW with weight decay; gradient clipping; optional gradient checkpointing.

Everything needed to resume lives in the output directory, none of it pickled: the model
(``config.json`` + ``model.safetensors``), the optimizer moments (``optimizer.safetensors``) and
``trainer_state.json``. Batches are drawn from ``numpy.random.default_rng([seed, step])``, so a
resumed run sees exactly the batches an uninterrupted one would. ``log.jsonl`` holds the curves.

``run_pretraining`` can drive several models on the same batches (the benchmark trains HyenaDNA and
the same-size Transformer in lock step, so they see identical data and steps).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

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


class Trainer:
    """One model, its AdamW state and its output directory; ``train_step`` takes a shared batch."""

    def __init__(self, out_dir: str | Path, model_config: HyenaDNAConfig | None = None, pretrain: PretrainConfig | None = None):
        self.out_dir = Path(out_dir)
        state_path = self.out_dir / "trainer_state.json"
        if state_path.is_file():  # resume
            state = json.loads(state_path.read_text())
            self.model = HyenaDNAForCausalLM.from_pretrained(self.out_dir)
            self.step, self.tokens, self.elapsed = state["step"], state["tokens"], state["elapsed"]
            saved = PretrainConfig(**{k: v for k, v in state["pretrain"].items() if k != "stages"})
            self.pretrain = pretrain or saved
        else:
            if model_config is None or pretrain is None:
                raise FileNotFoundError(f"{state_path}: nothing to resume and no model/pretrain config given")
            self.model = HyenaDNAForCausalLM(model_config)
            self.step, self.tokens, self.elapsed = 0, 0, 0.0
            self.pretrain = pretrain
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.dim() >= 2 and "implicit_filter" not in name else no_decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.pretrain.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.pretrain.lr,
            betas=(0.9, 0.95),
        )
        if state_path.is_file():
            self._load_optimizer()

    def train_step(self, inputs: torch.Tensor, labels: torch.Tensor, lr: float) -> float:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        loss = self.model.loss(inputs, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.pretrain.grad_clip)
        self.optimizer.step()
        self.elapsed += time.perf_counter() - t0
        self.step += 1
        self.tokens += labels.numel()
        return loss.item()

    def save(self) -> None:
        from safetensors.torch import save_file

        self.model.save_pretrained(self.out_dir)
        names = {id(p): n for n, p in self.model.named_parameters()}
        tensors = {}
        for p, st in self.optimizer.state.items():
            for key, value in st.items():
                tensors[f"{key}.{names[id(p)]}"] = torch.as_tensor(value).detach().contiguous().cpu()
        tmp = self.out_dir / "optimizer.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(self.out_dir / "optimizer.safetensors")
        state = {"step": self.step, "tokens": self.tokens, "elapsed": self.elapsed, "pretrain": asdict(self.pretrain)}
        tmp = self.out_dir / "trainer_state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.out_dir / "trainer_state.json")

    def _load_optimizer(self) -> None:
        from safetensors.torch import load_file

        path = self.out_dir / "optimizer.safetensors"
        if not path.is_file():
            return
        saved = load_file(str(path))
        for name, p in self.model.named_parameters():
            st = {key: saved[f"{key}.{name}"] for key in ("step", "exp_avg", "exp_avg_sq") if f"{key}.{name}" in saved}
            if st:
                self.optimizer.state[p] = st

    def log(self, record: dict) -> None:
        with open(self.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


def bits_per_base(model, genome: Genome, context: int | None = None, batch_size: int = 16) -> float:
    """Mean bits per base of ``genome`` under ``model`` (windowed; see :mod:`.score`)."""
    total, n = 0.0, 0
    for ids in genome.ids:
        lp = score_ids(model, ids, context, batch_size=batch_size)
        total += lp.sum()
        n += len(lp)
    return -total / n / LN2


def run_pretraining(trainers: list[Trainer], genome: Genome, val: Genome | None, cfg: PretrainConfig, progress: bool = True, max_seconds: float | None = None,
                    stop_step: int | None = None) -> None:
    """Train every trainer on the same batches from its (common) current step up to ``cfg.steps``.

    Checkpoints every ``cfg.checkpoint_seconds`` and at the end; evaluates bits/base on ``val``
    every ``cfg.eval_every`` steps; stops cleanly after ``max_seconds`` or at step ``stop_step`` (the
    schedule stays that of ``cfg.steps``; resume continues).
    """
    from tqdm import tqdm

    start = min(t.step for t in trainers)
    if any(t.step != start for t in trainers):
        raise RuntimeError(f"trainers are at different steps {[t.step for t in trainers]}; resume them separately")
    for t in trainers:
        t.out_dir.mkdir(parents=True, exist_ok=True)
    began = last_save = time.time()
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc="pretrain", unit="step")
    step = start
    for step in range(start, min(cfg.steps, stop_step or cfg.steps)):
        length = cfg.seq_len_at(step)
        inputs, labels = sample_batch(genome, max(1, cfg.tokens_per_step // length), length, np.random.default_rng([cfg.seed, step]), cfg.reverse_complement)
        lr = cfg.lr_at(step)
        record = {"step": step + 1, "seq_len": length, "lr": lr}
        for t in trainers:
            loss = t.train_step(inputs, labels, lr)
            record[f"{t.model.config.mixer}_loss_bits"] = loss / LN2
        if val is not None and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            for t in trainers:
                record[f"{t.model.config.mixer}_val_bits_per_base"] = bits_per_base(t.model, val, cfg.seq_len)
        for t in trainers:
            t.log(record | {"tokens": t.tokens, "elapsed": round(t.elapsed, 2)})
        bar.set_postfix({k.replace("_loss_bits", ""): f"{v:.3f}" for k, v in record.items() if k.endswith("loss_bits")})
        bar.update(1)
        if time.time() - last_save > cfg.checkpoint_seconds:
            for t in trainers:
                t.save()
            last_save = time.time()
        if max_seconds is not None and time.time() - began > max_seconds:
            break
    bar.close()
    for t in trainers:
        t.save()
