"""AdaSpeech source training and adaptation through seqverse.core.train against the plain loops
they had before the engine (same losses step by step)."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks
from torch import nn

from seqverse.speech.adaspeech import text as T
from seqverse.speech.adaspeech.corpus import prepare_speech
from seqverse.speech.adaspeech.model import AdaSpeech, AdaSpeechConfig
from seqverse.speech.adaspeech.train import (
    AdaptationCache,
    _convert_nocln,
    adapt,
    adapted_parameters,
    batches,
    collate,
    step_loss,
    train_source,
)

DATA = Path(__file__).parents[2] / "data" / "adaspeech"
STATS = {"pitch_mean": 4.9, "pitch_std": 0.37, "energy_mean": 2.44, "energy_std": 2.45}


@pytest.fixture(scope="module")
def items():
    torch.set_num_threads(1)
    al = np.load(DATA / "aligner.npz")
    pairs = [(DATA / f"{line.split('|')[0]}.wav", line.split("|")[1]) for line in (DATA / "texts.txt").read_text().splitlines()]
    out = prepare_speech(pairs, (al["mean"], al["var"]), STATS)
    for i, it in enumerate(out):
        it["speaker"], it["id"] = "abc"[i % 3], f"u{i}"
    return out


def tiny(dropout: float = 0.1):
    torch.manual_seed(0)
    cfg = AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=["a", "b", "c"], d_model=32, ffn_filter=48,
                          variance_filter=32, stats=STATS, dropout=dropout)
    return AdaSpeech(cfg)


def reference_source_losses(model, train_items, steps, max_frames, lr, rng):
    """The source-training loop before the engine (source_step + its lr_at), minus checkpoints."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    index = {s: i for i, s in enumerate(model.config.speakers)}
    queue, out = [], []
    model.train()
    for step in range(steps):
        if not queue:
            queue = batches(train_items, max_frames, rng)
        batch = collate(queue.pop(), index)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 400) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))
        total, _ = step_loss(model, batch, model.speaker_vectors(batch["speaker_ids"]))
        opt.zero_grad()
        total.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        out.append(total.item())
    return out


@pytest.mark.slow
def test_source_training_reproduces_the_reference_loop(items):
    rng = random.Random(3)
    expected = reference_source_losses(tiny(), items[:6], 3, 300, 1e-3, rng)
    rng = random.Random(3)
    result = train_source(tiny(), items[:6], [], None, 3, 300, 1e-3, rng.getstate(), progress=False)
    assert max(abs(a - b) for a, b in zip(result.losses(), expected, strict=True)) < 1e-6
    assert len(expected) == 3


def reference_adapt_losses(model, items, mode, steps, seed, batch_size):
    """The adaptation loop before the engine (Adam: E^s at 1e-2, the mode's parameters at 1e-2)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(False)
    speaker = nn.Parameter(model.speaker_embedding.weight.mean(0).detach().clone())
    if mode == "nocln":
        _convert_nocln(m, speaker.detach())
    params = adapted_parameters(m, mode)
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam([{"params": [speaker], "lr": 1e-2}, {"params": list(params.values()), "lr": 1e-2}])
    cache = AdaptationCache(m, items)
    m.train()
    losses = []
    for _ in range(steps):
        rows = None if len(items) <= batch_size else torch.randperm(len(items), generator=gen)[:batch_size]
        total, _ = cache.loss(m, speaker, rows)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    return losses, speaker.detach()


@pytest.mark.parametrize("batch_size", [2, 50])  # random rows / every row
def test_adaptation_reproduces_the_reference_loop(items, batch_size):
    model = tiny()
    for cln in model.decoder_norms():
        nn.init.normal_(cln.w_gamma.weight, std=0.1)
    _, speaker = reference_adapt_losses(model, items, "adaspeech", 3, 1, batch_size)
    voice = adapt(model, items, mode="adaspeech", steps=3, seed=1, batch_size=batch_size)
    assert torch.allclose(voice.speaker, speaker, atol=1e-6)
    assert not torch.allclose(voice.speaker, model.speaker_embedding.weight.mean(0), atol=1e-4)


# ------------------------------------------------------------------ data parallelism
# Adaptation on 2 gloo processes equals one process: each rank adapts on its share of every
# mini-batch, the masked means written as parts over both ranks' counts (TrainConfig.loss_is_part).


def _adapt(items) -> list[float]:
    from seqverse.speech.adaspeech.train import adapt

    model = tiny(dropout=0.0)  # dropout masks depend on how the rows are split
    for cln in model.decoder_norms():
        nn.init.normal_(cln.w_gamma.weight, std=0.1)
    voice = adapt(model, items, mode="adaspeech", steps=3, seed=1, batch_size=4)
    return torch.cat([voice.speaker.flatten()] + [v.flatten() for _, v in sorted(voice.params.items())]).tolist()


def _worker(rank, size, init, items, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    result = _adapt(items)
    finish_rank(rank, result, out)


@pytest.mark.slow
def test_adaptation_on_two_processes_equals_one(items):
    one = _adapt(items)
    two = spawn_ranks(_worker, 2, items)
    # Adam divides each coordinate by its gradient's running RMS, so float rounding in the summed
    # gradients of near-zero coordinates moves them by up to ~1e-4 of lr 1e-2 in 3 steps (measured
    # 5.0e-5; with dropout left on, 5.8e-2)
    assert max(abs(a - b) for a, b in zip(two, one, strict=True)) < 2e-4


# Source training on 2 gloo processes equals one process: each rank takes its rows of every length
# bucket, the masked means written as parts over both ranks' counts (TrainConfig.loss_is_part).


def _source(items) -> tuple[list[float], list[float]]:
    model = tiny(dropout=0.0)  # dropout masks depend on how the rows are split
    result = train_source(model, items, [], None, 3, 10_000, 1e-2, random.Random(3).getstate(), progress=False)
    return result.losses(), torch.cat([p.detach().flatten() for p in model.state_dict().values()]).tolist()


def _source_worker(rank, size, init, items, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    result = _source(items)
    finish_rank(rank, result, out)


@pytest.mark.slow
def test_source_training_on_two_processes_equals_one(items):
    sizes = [len(b) for b in batches(items, 10_000, random.Random(3))]
    assert min(sizes) >= 2, sizes  # every bucket splits over both ranks
    losses, weights = _source(items)
    two_losses, two_weights = spawn_ranks(_source_worker, 2, items)
    assert len(losses) == 3
    assert max(abs(a - b) for a, b in zip(two_losses, losses, strict=True)) < 1e-5  # measured 7.2e-7
    assert max(abs(a - b) for a, b in zip(two_weights, weights, strict=True)) < 1e-5  # measured 3.7e-7
