"""Core's own training path (the synthetic-task benchmark) through the engine equals its old loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqverse.core.backbones import build
from seqverse.core.bench.synthetic import (
    DEFAULTS,
    TASKS,
    SyntheticRun,
    TaskModel,
    lr_at,
    param_groups,
    run_synthetic,
)


def reference_losses(run: SyntheticRun) -> list[float]:
    """The loop run_synthetic had before the engine (AdamW param groups, warm-up + cosine, clipping)."""
    options = {**DEFAULTS[run.task], **run.task_options}
    torch.manual_seed(run.seed)
    model = TaskModel(options["vocab_size"], build(run.backbone, d_model=run.d_model, n_layers=run.n_layers), run.d_model)
    opt = torch.optim.AdamW(param_groups(model, run.weight_decay), lr=run.lr)
    peaks = [g["lr"] for g in opt.param_groups]
    losses = []
    for step in range(run.steps):
        inputs, targets = TASKS[run.task](run.batch_size, seed=run.seed * 10**7 + step, **options)
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = lr_at(step, run.steps, peak)
        logits, answers = model(inputs, targets)
        loss = F.cross_entropy(logits, answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def test_synthetic_benchmark_training_reproduces_its_old_loop():
    torch.set_num_threads(1)
    run = SyntheticRun(task="induction", backbone="s4d", task_options={"seq_len": 32}, steps=6, batch_size=4, d_model=16, n_layers=1, test_size=8, lr=3e-3)
    expected = reference_losses(run)
    result = run_synthetic(run, progress=False, device="cpu")
    assert abs(result["final_loss"] - sum(expected) / len(expected)) < 1e-6
