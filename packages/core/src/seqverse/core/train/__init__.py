"""A small causal transformer LM trainer, with optional sequence parallelism.

``python -m seqverse.core.train`` trains one process; under
``torchrun --nproc-per-node 4 -m seqverse.core.train --sequence-parallel ring`` every rank holds
one slice of each sequence (:func:`seqverse.core.parallel.shard`), the attention mixers of the
:mod:`seqverse.core.backbones` stack are made sequence parallel
(:func:`seqverse.core.parallel.parallelize`), and parameter gradients are summed over the ranks.
The loss is the mean over *all* tokens, so the run follows the single-process run step by step.

Data: an endless stream of token sequences from a fixed random Markov chain (each token has
four likely successors), drawn from ``seed`` and the step number, so every run sees the same
batches. The loss falls from ``ln(vocab)`` towards the chain's entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from seqverse.core import parallel
from seqverse.core.backbones import build


@dataclass
class TrainConfig:
    sequence_parallel: str = "none"  # "none", "ring", "lightseq" or "ulysses"
    steps: int = 20
    seq_len: int = 256
    batch_size: int = 2
    vocab_size: int = 64
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    lr: float = 3e-3
    seed: int = 0
    remat: bool = False  # LightSeq rematerialization-aware checkpointing of every block


class LanguageModel(nn.Module):
    """Token embedding -> attention backbone (pre-norm blocks with MLP) -> vocabulary logits."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.backbone = build(
            "attention",
            config.d_model,
            config.n_layers,
            norm="rmsnorm",
            n_heads=config.n_heads,
            n_kv_heads=config.n_kv_heads,
        )
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.embed(tokens)))


def markov_batch(config: TrainConfig, step: int) -> torch.Tensor:
    """``[batch, seq_len + 1]`` tokens of the run's Markov chain (the same on every rank)."""
    chain = torch.Generator().manual_seed(config.seed)
    logits = torch.randn(config.vocab_size, config.vocab_size, generator=chain)
    top = logits.topk(4, dim=-1).indices
    probs = torch.full((config.vocab_size, config.vocab_size), 0.02 / config.vocab_size)
    probs.scatter_(1, top, 0.245 + 0.02 / config.vocab_size)
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step + 1)
    tokens = torch.empty(config.batch_size, config.seq_len + 1, dtype=torch.long)
    tokens[:, 0] = torch.randint(config.vocab_size, (config.batch_size,), generator=gen)
    for t in range(config.seq_len):
        tokens[:, t + 1] = torch.multinomial(probs[tokens[:, t]], 1, generator=gen)[:, 0]
    return tokens


def train(config: TrainConfig, group=None, device: str = "cpu", log=None) -> list[float]:
    """Train for ``config.steps`` steps; returns the loss (mean over all tokens) of every step."""
    rank, size = parallel.comm.rank_and_size(group)
    method = config.sequence_parallel
    if size > 1 and method == "none":
        raise ValueError(
            "several processes were launched: choose --sequence-parallel ring, lightseq or ulysses"
        )
    torch.manual_seed(config.seed)
    model = LanguageModel(config).to(device)
    if method != "none":
        parallel.parallelize(model.backbone, method, group)
    if config.remat:
        parallel.checkpoint_blocks(model.backbone)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    losses = []
    for step in range(config.steps):
        tokens = markov_batch(config, step).to(device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        if method != "none":
            inputs, targets = parallel.shard(inputs, method, group), parallel.shard(targets, method, group)
        logits = model(inputs)
        n_tokens = targets.numel() * size  # every rank holds an equal slice
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum") / n_tokens
        loss.backward()
        loss = loss.detach()
        if size > 1:  # every rank saw different tokens: sum their gradients and losses
            grads = [p.grad for p in model.parameters()]
            flat = torch.cat([g.flatten() for g in grads])
            dist.all_reduce(flat, group=group)
            for g, new in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                g.copy_(new.view_as(g))
            dist.all_reduce(loss, group=group)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log is not None:
            log(step, losses[-1])
    return losses


def markov_entropy(config: TrainConfig) -> float:
    """The chain's conditional entropy (nats): the lowest loss a perfect model reaches."""
    probs = torch.full((config.vocab_size,), 0.02 / config.vocab_size, dtype=torch.float64)
    probs[:4] += 0.245
    return float(-(probs * probs.log()).sum())


__all__ = ["LanguageModel", "TrainConfig", "markov_batch", "markov_entropy", "train"]
