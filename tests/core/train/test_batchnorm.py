"""GlobalBatchNorm (the engine's BatchNorm under data parallelism without CUDA) against its plain
reference, nn.BatchNorm2d over the whole global batch: outputs, input and parameter gradients, and
running statistics after two training steps, with 5 rows split 3 + 2 over 2 gloo processes."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks
from torch import nn

ROWS = [(0, 3), (3, 5)]  # rank 0's and rank 1's rows of the global batch of 5


def _data(step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(5, 3, 4, 6, generator=g, dtype=torch.float64) * 2 + 1
    w = torch.randn(5, 3, 4, 6, generator=g, dtype=torch.float64)  # the loss: sum(w * y)
    return x, w


def _bn() -> nn.BatchNorm2d:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.3).double()
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    return bn


def _steps(bn, rows) -> dict:
    """Two training-mode steps on ``rows`` of each global batch: this process's outputs, input
    gradients and parameter gradients (summed over the steps), then the running statistics."""
    out = {"y": [], "x_grad": []}
    for step in range(2):
        x, w = _data(step)
        x = x[rows[0] : rows[1]].clone().requires_grad_(True)
        y = bn(x)
        (w[rows[0] : rows[1]] * y).sum().backward()
        out["y"].append(y.detach().flatten().tolist())
        out["x_grad"].append(x.grad.flatten().tolist())
    out["weight_grad"], out["bias_grad"] = bn.weight.grad.tolist(), bn.bias.grad.tolist()
    out["running_mean"], out["running_var"] = bn.running_mean.tolist(), bn.running_var.tolist()
    out["num_batches_tracked"] = int(bn.num_batches_tracked)
    return out


def _worker(rank, size, init, _scratch, out):
    from seqverse.core.train.batchnorm import GlobalBatchNorm, convert_batchnorm, restore_batchnorm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    model = nn.Sequential(_bn())
    convert_batchnorm(model)
    assert isinstance(model[0], GlobalBatchNorm)
    result = _steps(model[0], ROWS[rank])
    for key in ("weight_grad", "bias_grad"):  # each rank holds its rows' part of the gradient
        t = torch.tensor(result[key], dtype=torch.float64)
        dist.all_reduce(t)
        result[key] = t.tolist()
    restore_batchnorm(model)
    result["restored"] = type(model[0]) is nn.BatchNorm2d and model[0].running_mean.tolist() == result["running_mean"]
    gathered = [None] * size
    dist.all_gather_object(gathered, result)
    finish_rank(rank, gathered, out)


@pytest.mark.slow
def test_global_batchnorm_on_two_processes_equals_batchnorm_on_the_whole_batch():
    reference = _steps(_bn(), (0, 5))
    ranks = spawn_ranks(_worker, 2, timeout=120)
    for step in range(2):
        for key in ("y", "x_grad"):
            got = torch.tensor(ranks[0][key][step] + ranks[1][key][step], dtype=torch.float64)
            assert torch.allclose(got, torch.tensor(reference[key][step], dtype=torch.float64), atol=1e-10), key
    for key in ("weight_grad", "bias_grad", "running_mean", "running_var"):
        for r in range(2):
            assert torch.allclose(torch.tensor(ranks[r][key]), torch.tensor(reference[key]), atol=1e-10), (key, r)
    assert ranks[0]["num_batches_tracked"] == reference["num_batches_tracked"] == 2
    assert ranks[0]["restored"] and ranks[1]["restored"]
