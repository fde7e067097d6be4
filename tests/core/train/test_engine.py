"""The training engine on one process: schedules, accumulation, early stopping, checkpoints, resume."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os

import pytest
import torch
from torch import nn

from seqverse.core.train import TrainConfig, fit, lr_factor
from seqverse.core.train.engine import GlobalBatchSampler, shard_batch


def _data(n=12, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.TensorDataset(torch.randn(n, 4, generator=gen), torch.randn(n, 2, generator=gen))


def _model(dropout=0.2):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(dropout), nn.ReLU(), nn.Linear(8, 2))


def _mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_schedules():
    cfg = TrainConfig(steps=10, schedule="cosine", warmup=0.2, min_lr_ratio=0.1)
    factors = [lr_factor(cfg, s, 10) for s in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == 1.0 and abs(factors[-1] - (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))) < 1e-12
    lin = TrainConfig(steps=4, schedule="linear")
    assert [lr_factor(lin, s, 4) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(TrainConfig(schedule="step"), 0, 4)


def test_fit_equals_a_plain_loop():
    """AdamW, constant lr, clipping, shuffled batches: fit's steps equal a hand-written loop's."""
    data = _data()
    model, ref = _model(0.0), _model(0.0)
    opt = torch.optim.AdamW(ref.parameters(), lr=0.01, weight_decay=0.05)
    sampler = GlobalBatchSampler(len(data), 5, shuffle=True, seed=7)
    ref_losses = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for idx in sampler.global_batches():
            x, y = data[idx]
            loss = ((ref(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.3)
            opt.step()
            ref_losses.append(loss.item())
    cfg = TrainConfig(epochs=2, batch_size=5, lr=0.01, weight_decay=0.05, clip_norm=0.3, seed=7, progress=False)
    result = fit(model, data, _mse, cfg)
    assert len(result.losses()) == 6
    assert max(abs(a - b) for a, b in zip(result.losses(), ref_losses, strict=True)) < 1e-6
    assert torch.allclose(_flat(model), _flat(ref), atol=1e-6)


def test_grad_accumulation_equals_the_big_batch():
    batches = [(torch.randn(4, 4, generator=torch.Generator().manual_seed(i)),) * 1 for i in range(4)]
    pairs = [(b[0], b[0][:, :2] * 2) for b in batches]
    cfg = dict(lr=0.05, optimizer="sgd", momentum=0.0, progress=False, seed=None)
    a, b = _model(0.0), _model(0.0)
    fit(a, [(torch.cat([x for x, _ in pairs[:2]]), torch.cat([y for _, y in pairs[:2]])),
            (torch.cat([x for x, _ in pairs[2:]]), torch.cat([y for _, y in pairs[2:]]))],
        _mse, TrainConfig(steps=2, **cfg))
    fit(b, pairs, _mse, TrainConfig(steps=2, grad_accum=2, **cfg))
    assert torch.allclose(_flat(a), _flat(b), atol=1e-6)


def test_shard_batch_weights_cover_the_batch():
    batch = {"x": torch.arange(5), "names": list("abcde"), "scale": 2.0}
    parts = [shard_batch(batch, r, 2) for r in range(2)]
    assert [p[0]["names"] for p in parts] == [["a", "b", "c"], ["d", "e"]]
    assert [p[1] for p in parts] == [0.6, 0.4] and parts[1][0]["scale"] == 2.0
    lone, weight = shard_batch(torch.arange(1), 1, 2)  # nothing left for rank 1: rank 0's row, weight 0
    assert weight == 0.0 and lone.tolist() == [0]


def test_early_stopping_restores_best(tmp_path):
    data = _data()
    model = _model()
    scores = iter([3.0, 1.0, 2.0, 2.5, 0.5, 0.1])  # best at the 2nd evaluation, patience 2 stops at the 4th
    snapshots = []

    def eval_fn(m):
        snapshots.append(_flat(m).clone())
        return {"val": next(scores)}

    cfg = TrainConfig(steps=20, batch_size=4, lr=0.01, eval_every=2, monitor="val", patience=2,
                      restore_best=True, progress=False, out_dir=str(tmp_path))
    result = fit(model, data, _mse, cfg, eval_fn=eval_fn)
    assert result.stopped_early and result.steps_done == 8
    assert result.best_metric == 1.0 and result.best_step == 4
    assert torch.equal(_flat(model), snapshots[1])
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 9)) and lines[3]["val"] == 1.0
    assert oct((tmp_path / "checkpoint" / "model.safetensors").stat().st_mode & 0o777) == "0o644"


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="nothing to train"):
        fit(_model(), _data(), _mse, TrainConfig(steps=0, progress=False))
    with pytest.raises(ValueError, match="need an eval_fn"):
        fit(_model(), _data(), _mse, TrainConfig(patience=2, progress=False))
    with pytest.raises(ValueError, match="needs CUDA"):
        if not torch.cuda.is_available():
            fit(_model(), _data(), _mse, TrainConfig(amp="bf16", device="cpu", progress=False))
        else:
            raise ValueError("needs CUDA")  # on CUDA machines bf16 is allowed: nothing to check here


# ------------------------------------------------------------------ resume after a kill

RESUME = dict(steps=9, batch_size=5, lr=0.02, schedule="cosine", warmup=2, checkpoint_every=2, progress=False, seed=4)


def _run(out_dir, die_at=None):
    """Train RESUME (dropout, shuffled epochs of 12 examples: the RNG and the data position matter);
    with ``die_at`` the process exits abruptly inside the loss of that step (no cleanup at all)."""
    torch.set_num_threads(1)
    model = _model()
    calls = [0]

    def loss(m, batch):
        calls[0] += 1
        if die_at is not None and calls[0] == die_at:
            os._exit(3)
        return _mse(m, batch)

    result = fit(model, _data(), loss, TrainConfig(out_dir=out_dir, **RESUME))
    return model, result


def test_resume_after_kill_reaches_the_same_weights(tmp_path):
    reference, ref_result = _run(None)
    child = mp.get_context("spawn").Process(target=_run, args=(str(tmp_path), 8))
    child.start()
    child.join(120)
    assert child.exitcode == 3  # killed in step 8, after the step-6 checkpoint
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 6
    resumed, result = _run(str(tmp_path))
    assert result.steps_done == 9
    assert torch.equal(_flat(resumed), _flat(reference))
    assert result.losses() == ref_result.losses()
