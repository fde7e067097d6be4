"""The demo language model: a small causal transformer on Markov-chain tokens, trained by :func:`fit`.

``python -m seqverse.core.train`` trains one process; under ``torchrun --nproc-per-node N`` the
processes form a data-parallel x sequence-parallel mesh (:mod:`.mesh`): with
``--sequence-parallel ring|lightseq|ulysses`` each SP group of ``--sp-size`` ranks holds one slice
of every sequence (:func:`seqverse.core.parallel.shard`) and the attention mixers are made sequence
parallel (:func:`seqverse.core.parallel.parallelize`); the rows of the mesh split the batch. The
loss is the mean over *all* tokens of the global batch, so the run follows the single-process run
step by step.

Data: an endless stream of token sequences from a fixed random Markov chain (each token has four
likely successors), drawn from ``seed`` and the step number, so every run sees the same batches.
The loss falls from ``ln(vocab)`` towards the chain's entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core import parallel
from seqverse.core.backbones import build
from seqverse.core.train.engine import FitResult, TrainConfig, fit
from seqverse.core.train.mesh import Mesh, make_mesh


@dataclass
class LMConfig:
    sequence_parallel: str = "none"  # "none", "ring", "lightseq" or "ulysses"
    sp_size: int = 0  # ranks per SP group; 0: every process (with a method), else 1
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

    def __init__(self, config: LMConfig):
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


def markov_batch(config: LMConfig, step: int) -> torch.Tensor:
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


def lm_mesh(config: LMConfig) -> Mesh:
    """The mesh for ``config``: SP over ``sp_size`` ranks (all of them when 0 and a method is set)."""
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_initialized() else 1
    sp_size = config.sp_size or (world if config.sequence_parallel != "none" else 1)
    if sp_size > 1 and config.sequence_parallel == "none":
        raise ValueError(f"--sp-size {sp_size} needs --sequence-parallel ring, lightseq or ulysses")
    return make_mesh(sp_size)


def train_lm(config: LMConfig, device: str = "auto", log=None, out_dir: str | None = None,
             progress: bool = False, mesh: Mesh | None = None) -> FitResult:
    """Train for ``config.steps`` steps with :func:`fit`; the result's ``losses()`` are the
    global mean losses of every step."""
    if config.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {config.steps}")
    mesh = mesh or lm_mesh(config)
    method = config.sequence_parallel
    torch.manual_seed(config.seed)
    model = LanguageModel(config)
    if mesh.sp_size > 1:
        parallel.parallelize(model.backbone, method, mesh.sp_group)
    if config.remat:
        parallel.checkpoint_blocks(model.backbone)

    def loss_fn(model, tokens):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        if mesh.sp_size > 1:  # this rank's slice; its loss part is over the whole row's tokens
            inputs = parallel.shard(inputs, method, mesh.sp_group)
            targets = parallel.shard(targets, method, mesh.sp_group)
        logits = model(inputs)
        n_tokens = targets.numel() * mesh.sp_size
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum") / n_tokens

    engine = TrainConfig(steps=config.steps, lr=config.lr, weight_decay=0.0, seed=config.seed, device=device,
                         out_dir=out_dir, progress=progress, progress_desc="lm", checkpoint_every=10,
                         find_unused_parameters=False)
    on_step = (lambda step, record: log(step - 1, record["loss"])) if log else None
    return fit(model, lambda step: markov_batch(config, step), loss_fn, engine, mesh=mesh, on_step=on_step)


def markov_entropy(config: LMConfig) -> float:
    """The chain's conditional entropy (nats): the lowest loss a perfect model reaches."""
    probs = torch.full((config.vocab_size,), 0.02 / config.vocab_size, dtype=torch.float64)
    probs[:4] += 0.245
    return float(-(probs * probs.log()).sum())
