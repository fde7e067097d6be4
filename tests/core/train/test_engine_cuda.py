"""The engine's CUDA paths: autocast (bf16/fp16 + grad scaler) and NCCL data parallelism.

Skipped without CUDA (NCCL: without two GPUs). The mixed-precision run must follow the float32
run closely and still learn; two NCCL ranks must equal one process like the gloo test.
"""

from __future__ import annotations

import engine_workers
import pytest
import torch
from torch import nn

from seqverse.core.train import TrainConfig, fit

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _run(amp: str):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 64), nn.GELU(), nn.Linear(64, 3))
    data = engine_workers.regression_data(64)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=3e-3, amp=amp, device="cuda", progress=False, seed=1)
    result = fit(model, data, engine_workers.mse, cfg)
    return result.losses(), next(model.parameters()).device


@cuda
@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_mixed_precision_follows_float32(amp):
    full, device = _run("off")
    mixed, _ = _run(amp)
    assert device.type == "cuda"
    assert mixed[-1] < mixed[0] * 0.9
    assert max(abs(a - b) for a, b in zip(mixed, full, strict=True)) < 0.05 * max(full)


@cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs for NCCL")
def test_two_nccl_ranks_equal_one():
    one = engine_workers.run_case(["dataset"], 1)
    two = engine_workers.run_case(["dataset"], 2, backend="nccl")
    for per_rank in two["dataset/losses"]:
        assert max(abs(a - b) for a, b in zip(per_rank, one["dataset/losses"], strict=True)) < 1e-4
