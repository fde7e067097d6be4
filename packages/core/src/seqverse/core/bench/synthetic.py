"""`seqverse bench synthetic`: train a 2-layer model on a synthetic task and report test accuracy.

The model is token embedding -> backbone stack -> linear head. Training draws fresh examples every
step (an endless stream from one seed), the test set comes from a seed never used in training, and
accuracy counts only the positions where the task asks for an answer.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones import NAMES, build
from seqverse.core.bench.tasks import IGNORE, TASKS

# One setting per task, small enough to train on two CPU cores (see the core README for the table).
DEFAULTS = {
    "mqar": {"seq_len": 256, "vocab_size": 8192, "num_kv_pairs": 16},
    "selective-copy": {"seq_len": 1024, "num_tokens": 16, "vocab_size": 16},
    "induction": {"seq_len": 256, "vocab_size": 16},
}


@dataclass
class SyntheticRun:
    task: str
    backbone: str
    task_options: dict = field(default_factory=dict)
    backbone_options: dict = field(default_factory=dict)
    d_model: int = 128
    n_layers: int = 2
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    test_size: int = 1000
    seed: int = 0


class TaskModel(nn.Module):
    """Embedding -> backbone -> vocabulary logits (computed only where an answer is asked)."""

    def __init__(self, vocab_size: int, backbone: nn.Module, d_model: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.backbone = backbone
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(self.embed(inputs))
        asked = targets != IGNORE
        return self.head(hidden[asked]), targets[asked]


def _input_length(task: str, options: dict) -> int:
    extra = options.get("num_tokens", 0) if task == "selective-copy" else 0
    return options["seq_len"] + extra


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices only; SSM parameters keep the overrides their layer set in
    ``p._optim`` (the S4 recipe: state-space parameters get their own lr and no weight decay)."""
    groups: dict[tuple, dict] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        options = {"weight_decay": weight_decay if p.dim() >= 2 else 0.0, **getattr(p, "_optim", {})}
        key = tuple(sorted(options.items()))
        groups.setdefault(key, {"params": [], **options})["params"].append(p)
    return list(groups.values())


def lr_at(step: int, total: int, peak: float, warmup_frac: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    warmup = max(1, int(total * warmup_frac))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def accuracy(model: TaskModel, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 100) -> float:
    model.eval()
    correct = total = 0
    for i in range(0, len(inputs), batch_size):
        logits, answers = model(inputs[i : i + batch_size], targets[i : i + batch_size])
        correct += (logits.argmax(-1) == answers).sum().item()
        total += answers.numel()
    model.train()
    return correct / total


def run_synthetic(run: SyntheticRun, progress: bool = True, device: str | None = None) -> dict:
    """Train ``run.backbone`` on ``run.task`` and return test accuracy, loss and timings."""
    if run.task not in TASKS:
        raise ValueError(f"unknown task {run.task!r}; choose one of: {', '.join(TASKS)}")
    if run.backbone not in NAMES:
        raise ValueError(f"unknown backbone {run.backbone!r}; choose one of: {', '.join(NAMES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    options = {**DEFAULTS[run.task], **run.task_options}
    generate = TASKS[run.task]
    torch.manual_seed(run.seed)
    backbone_options = dict(run.backbone_options)
    if run.backbone == "hyena":  # the implicit filter is generated for the training length
        backbone_options.setdefault("l_max", _input_length(run.task, options))
    backbone = build(run.backbone, d_model=run.d_model, n_layers=run.n_layers, **backbone_options)
    model = TaskModel(options["vocab_size"], backbone, run.d_model).to(device)
    test_inputs, test_targets = generate(run.test_size, seed=10**6 + run.seed, **options)
    test_inputs, test_targets = test_inputs.to(device), test_targets.to(device)

    from seqverse.core.train import TrainConfig, fit

    def loss_fn(model, batch):
        logits, answers = model(*batch)
        return F.cross_entropy(logits, answers)

    config = TrainConfig(steps=run.steps, lr=run.lr, clip_norm=1.0, seed=None, device=device, progress=progress,
                         progress_desc=f"{run.task}/{run.backbone}", log_every=20, amp="off")
    start = time.perf_counter()
    result = fit(model, lambda step: generate(run.batch_size, seed=run.seed * 10**7 + step, **options), loss_fn, config,
                 optimizer=lambda m: torch.optim.AdamW(param_groups(m, run.weight_decay), lr=run.lr),
                 schedule=lambda step: lr_at(step, run.steps, 1.0))
    losses = result.losses()
    train_seconds = time.perf_counter() - start
    return {
        **asdict(run),
        "task_options": options,
        "params": sum(p.numel() for p in backbone.parameters()),
        "final_loss": sum(losses[-50:]) / len(losses[-50:]),
        "test_accuracy": accuracy(model, test_inputs, test_targets),
        "train_seconds": round(train_seconds, 1),
        "device": device,
    }
