"""`seqverse bench speed`: training throughput, peak memory and generation latency per backbone.

For each backbone and length ``L`` one fresh process (so peak memory is its own) builds the stack,
then measures:

- forward+backward tokens/s on a ``[batch, L, d_model]`` input (one warm-up, best of ``repeats``);
- peak memory of that forward+backward: on CUDA ``torch.cuda.max_memory_allocated``, on CPU the
  growth of the process's peak resident set (``ru_maxrss``) over the moment before the first run;
- recurrent step latency with ``L`` positions already in context: SSMs carry a fixed-size state, so
  their step costs the same at any ``L``; attention's KV cache is filled with ``L`` entries first.

Results go to a table (with each backbone's speed as a ratio to attention at the same length) and a
PNG plot of tokens/s against length.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch

from seqverse.core.backbones import NAMES, build

DEFAULT_LENGTHS = (1024, 4096, 16384, 65536)


@dataclass
class SpeedRun:
    backbone: str
    seq_len: int
    d_model: int = 128
    n_layers: int = 1
    batch_size: int = 1
    repeats: int = 2
    step_repeats: int = 32
    device: str = "cpu"
    threads: int | None = None  # CPU threads (torch.set_num_threads); None keeps torch's default


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _context_state(model, batch_size: int, seq_len: int, device: str):
    """A recurrent state as after ``seq_len`` positions: KV caches get ``seq_len`` entries."""
    state = model.init_state(batch_size, device=device)
    for layer_state in state:
        if isinstance(layer_state, dict) and "k" in layer_state:
            shape = list(layer_state["k"].shape)
            shape[2] = seq_len
            layer_state.update(k=torch.randn(shape, device=device), v=torch.randn(shape, device=device), pos=seq_len)
    return state


def measure(run: SpeedRun) -> dict:
    """Measure one backbone at one length in this process (call through :func:`measure_isolated`)."""
    torch.manual_seed(0)
    if run.threads:
        torch.set_num_threads(run.threads)
    options = {"l_max": run.seq_len} if run.backbone == "hyena" else {}
    model = build(run.backbone, d_model=run.d_model, n_layers=run.n_layers, **options).to(run.device)
    x = torch.randn(run.batch_size, run.seq_len, run.d_model, device=run.device, requires_grad=True)
    weight = torch.randn(run.d_model, device=run.device)  # a plain sum after a norm has zero gradient

    def train_step() -> float:
        _sync(run.device)
        start = time.perf_counter()
        (model(x) * weight).sum().backward()
        _sync(run.device)
        return time.perf_counter() - start

    if run.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _peak_rss_bytes()
    times = [train_step() for _ in range(1 + run.repeats)][1:]
    peak = (torch.cuda.max_memory_allocated() if run.device.startswith("cuda") else _peak_rss_bytes()) - base

    with torch.no_grad():
        state = _context_state(model, run.batch_size, run.seq_len, run.device)
        x_t = torch.randn(run.batch_size, run.d_model, device=run.device)
        model.step(x_t, state)  # warm-up
        _sync(run.device)
        start = time.perf_counter()
        for _ in range(run.step_repeats):
            # the state is not carried over, so every step sees exactly seq_len positions of context
            model.step(x_t, state)
        _sync(run.device)
        step_seconds = (time.perf_counter() - start) / run.step_repeats

    best = min(times)
    return {
        **asdict(run),
        "params": sum(p.numel() for p in model.parameters()),
        "fwd_bwd_seconds": best,
        "tokens_per_second": run.batch_size * run.seq_len / best,
        "peak_memory_mb": max(peak, 0) / 2**20,
        "step_latency_ms": step_seconds * 1e3,
    }


def measure_isolated(run: SpeedRun, timeout: float | None = None) -> dict:
    """Run :func:`measure` in a child process so its peak memory is not mixed with other runs."""
    code = (
        "import json, sys; from seqverse.core.bench.speed import SpeedRun, measure; "
        "print(json.dumps(measure(SpeedRun(**json.loads(sys.argv[1])))))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(asdict(run))], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {**asdict(run), "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**asdict(run), "error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_ratios(rows: list[dict], baseline: str = "attention") -> list[dict]:
    """Add ``speedup_vs_<baseline>``: tokens/s over the baseline's at the same length."""
    base = {r["seq_len"]: r for r in rows if r["backbone"] == baseline and "error" not in r}
    for r in rows:
        ref = base.get(r["seq_len"])
        if ref is not None and "error" not in r:
            r[f"speedup_vs_{baseline}"] = r["tokens_per_second"] / ref["tokens_per_second"]
    return rows


def plot(rows: list[dict], path: str) -> None:
    """Tokens/s against sequence length, one line per backbone, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_speed, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["backbone"] for r in rows):
        ok = [r for r in rows if r["backbone"] == name and "error" not in r]
        lengths = [r["seq_len"] for r in ok]
        ax_speed.plot(lengths, [r["tokens_per_second"] for r in ok], marker="o", label=name)
        ax_mem.plot(lengths, [max(r["peak_memory_mb"], 1e-1) for r in ok], marker="o", label=name)
    for ax, label in ((ax_speed, "forward+backward tokens/s"), (ax_mem, "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_speed.legend()
    device = rows[0]["device"] if rows else "cpu"
    fig.suptitle(f"seqverse backbones, 1 sequence, d_model {rows[0]['d_model'] if rows else ''}, {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_speed(
    backbones: list[str],
    lengths: list[int],
    progress: bool = True,
    timeout: float | None = None,
    **options,
) -> list[dict]:
    """Measure every backbone at every length, each in its own process; add ratios to attention."""
    unknown = [b for b in backbones if b not in NAMES]
    if unknown:
        raise ValueError(f"unknown backbone {unknown[0]!r}; choose from: {', '.join(NAMES)}")
    if any(length < 1 for length in lengths):
        raise ValueError(f"sequence lengths must be positive, got {lengths}")
    from tqdm import tqdm

    jobs = [(b, length) for b in backbones for length in lengths]
    rows = []
    for backbone, length in tqdm(jobs, desc="speed", disable=not progress):
        rows.append(measure_isolated(SpeedRun(backbone=backbone, seq_len=length, **options), timeout=timeout))
    return add_ratios(rows)
