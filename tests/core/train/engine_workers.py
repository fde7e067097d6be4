"""Worker code for the engine's distributed tests: P gloo processes train tiny models with ``fit``.

Each case returns per-step losses and final weights (rank 0's, gathered); the tests compare them
with the same run on one process (``run_case(name, 1)``, no process group).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, gather_by_key, spawn_ranks
from torch import nn


class Net(nn.Module):
    """A small MLP with a parameter that never gets a gradient (DDP must cope)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        self.unused = nn.Linear(4, 4)

    def forward(self, x):
        return self.body(x)


def regression_data(n=11):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(n, 6, generator=gen)
    y = torch.randn(n, 3, generator=gen)
    return torch.utils.data.TensorDataset(x, y)


def mse(model, batch):
    x, y = batch
    loss = ((model(x) - y) ** 2).mean()
    return loss, {"abs": float((model(x) - y).detach().abs().mean())}


def case_dataset(name):
    """A Dataset of 11 examples, global batch 4 (the last of each epoch has 3), 3 epochs, AdamW
    with weight decay (an unused parameter must stay untouched), cosine with warm-up, clipping."""
    from seqverse.core.train import TrainConfig, fit

    torch.manual_seed(0)
    model = Net()
    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.05, weight_decay=0.1, schedule="cosine", warmup=2,
                      clip_norm=0.5, progress=False, seed=3)
    result = fit(model, regression_data(), mse, cfg)
    return {f"{name}/losses": result.losses(), f"{name}/weights": _flat(model)}


def case_stream(name):
    """Ready global batches from a step function, 2 micro-batches per step, SGD with momentum."""
    from seqverse.core.train import TrainConfig, fit

    torch.manual_seed(0)
    model = Net()

    def batch(i):
        gen = torch.Generator().manual_seed(100 + i)
        return torch.randn(6, 6, generator=gen), torch.randn(6, 3, generator=gen)

    cfg = TrainConfig(steps=5, lr=0.1, optimizer="sgd", grad_accum=2, schedule="linear", progress=False)
    result = fit(model, batch, mse, cfg)
    return {f"{name}/losses": result.losses(), f"{name}/weights": _flat(model)}


def case_synthetic(name):
    """The synthetic-task benchmark's training (seqverse.core.bench.synthetic) on the engine."""
    from seqverse.core.bench.synthetic import SyntheticRun, run_synthetic

    run = SyntheticRun(task="induction", backbone="s4d", task_options={"seq_len": 32}, steps=4, batch_size=4,
                       d_model=16, n_layers=1, test_size=8, lr=3e-3)
    result = run_synthetic(run, progress=False, device="cpu")
    return {f"{name}/losses": [result["final_loss"], result["test_accuracy"]]}


def _flat(model) -> list[float]:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()


CASES = {"dataset": case_dataset, "stream": case_stream, "synthetic": case_synthetic}


def run_case(names: list[str], size: int, timeout: float = 170, backend: str = "gloo") -> dict:
    """Run ``names`` on ``size`` processes (gloo; NCCL with one GPU each) or in this process when size is 1."""
    torch.set_num_threads(1)
    if size == 1:
        out = {}
        for n in names:
            out.update(CASES[n](n))
        return out
    return spawn_ranks(_worker, size, names, backend, timeout=timeout)


def _worker(rank, size, init, names, out, backend="gloo"):
    torch.set_num_threads(1)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=size)
    results = {}
    for n in names:
        results.update(CASES[n](n))
    finish_rank(rank, gather_by_key(results), out)
