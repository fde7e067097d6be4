"""FlexSP execution: the planner's groups become real process groups for each batch of
variable-length sequences (Wang et al. 2025, Sec. 4-5).

For every step, rank 0 solves the planner's MILP (:func:`seqverse.core.parallel.plan`) for the
batch's lengths and broadcasts the plan; each rank finds the SP group it belongs to, points the
model's sequence-parallel attention at that group's process group (every aligned power-of-two
group of the world is created once, :class:`AlignedGroups`, since ``dist.new_group`` is collective),
and runs the sequences assigned to the group, each split over the group's ranks (ring attention,
contiguous blocks; a sequence is padded at its end to a multiple of the group size, which causal
attention never lets earlier positions see). The loss is the sum of token cross-entropies over
the whole batch divided by its token count; each rank returns its part, and the engine sums the
parts (an SP mesh spanning every rank: DDP's average times the world size). ``static`` runs the
same step with one group of all ranks, FlexSP's baseline.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from seqverse.core.parallel.layout import shard_for_rank
from seqverse.core.parallel.mixer import SequenceParallelAttention
from seqverse.core.parallel.planner import CostModel, Plan, _make_plan, place, plan


class AlignedGroups:
    """A process group for every aligned power-of-two block of ranks (``place`` only forms these)."""

    def __init__(self, world: int):
        self.world, self.groups = world, {}
        size = 1
        while size <= world:
            for start in range(0, world, size):
                ranks = tuple(range(start, start + size))
                self.groups[ranks] = dist.new_group(list(ranks))
            size *= 2

    def __getitem__(self, ranks) -> object:
        return self.groups[tuple(ranks)]


def static_plan(lengths: list[int], world: int) -> Plan:
    """Static SP: one group of every rank, sequences one after another."""
    cost = CostModel()
    return _make_plan(lengths, [world] * len(lengths), [0] * len(lengths), world, cost, "static")


def broadcast_plan(lengths: list[int], world: int, capacity: int, cost_model: CostModel | None = None,
                   mode: str = "flexsp") -> Plan:
    """Rank 0's plan for ``lengths`` on every rank (the MILP may stop at a time limit: solve once)."""
    box = [None]
    if not dist.is_initialized() or dist.get_rank() == 0:
        box[0] = static_plan(lengths, world) if mode == "static" else plan(lengths, world, capacity, cost_model)
    if dist.is_initialized():
        dist.broadcast_object_list(box, src=0)
    return box[0]


def set_attention_group(model: nn.Module, group) -> None:
    for m in model.modules():
        if isinstance(m, SequenceParallelAttention):
            m.group = group


def planned_loss(model: nn.Module, sequences: list[torch.Tensor], the_plan: Plan, groups: AlignedGroups,
                 rank: int) -> torch.Tensor:
    """This rank's part of the batch's mean next-token loss under ``the_plan``."""
    total = sum(len(s) - 1 for s in sequences)
    mine = next(k for k, g in enumerate(the_plan.groups) if rank in g)
    ranks = the_plan.groups[mine]
    set_attention_group(model, groups[ranks])
    g_rank, g_size = ranks.index(rank), len(ranks)
    loss = None
    for seq, assigned in zip(sequences, the_plan.assignment, strict=True):
        if assigned != mine:
            continue
        inputs, targets = seq[:-1], seq[1:]
        pad = -len(inputs) % g_size
        inputs = F.pad(inputs, (0, pad))
        targets = F.pad(targets, (0, pad), value=-100)
        x = shard_for_rank(inputs[None], "ring", g_rank, g_size)
        y = shard_for_rank(targets[None], "ring", g_rank, g_size)
        part = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten(), ignore_index=-100, reduction="sum")
        loss = part if loss is None else loss + part
    if loss is None:  # a group with nothing to do still takes part in the backward
        loss = sum(p.sum() for p in model.parameters()) * 0.0
    return loss / total


def reference_loss(model: nn.Module, sequences: list[torch.Tensor]) -> torch.Tensor:
    """The same mean next-token loss on one device, sequence by sequence (the check)."""
    total = sum(len(s) - 1 for s in sequences)
    return sum(F.cross_entropy(model(s[None, :-1]).flatten(0, 1).float(), s[1:], reduction="sum") for s in sequences) / total


__all__ = ["AlignedGroups", "broadcast_plan", "place", "planned_loss", "reference_loss", "set_attention_group", "static_plan"]


def markov_sequences(config, lengths: list[int], step: int) -> list[torch.Tensor]:
    """One sequence of ``n + 1`` tokens of the run's Markov chain for each length ``n``."""
    from dataclasses import replace

    from seqverse.core.train.lm import markov_batch

    return [markov_batch(replace(config, batch_size=1, seq_len=n), step * 1000 + i)[0] for i, n in enumerate(lengths)]


def train_flexsp(config, n_seq: int, max_len: int, min_len: int, capacity: int, mode: str = "flexsp",
                 cost_model: CostModel | None = None, progress: bool = False, on_step=None):
    """Train the demo LM (:mod:`.lm`) on long-tailed batches of ``n_seq`` sequences, each step's
    SP groups from the planner (``mode="flexsp"``) or one group of all ranks (``"static"``).
    Returns the engine's FitResult (``loss`` per step; ``groups``: how many SP groups ran)."""
    from seqverse.core import parallel
    from seqverse.core.parallel.planner import long_tailed_lengths
    from seqverse.core.train.engine import TrainConfig, fit
    from seqverse.core.train.lm import LanguageModel
    from seqverse.core.train.mesh import Mesh

    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(config.seed)
    model = LanguageModel(config)

    def batch(step):
        lengths = long_tailed_lengths(n_seq, max_len, seed=config.seed * 1000 + step, min_len=min_len)
        return markov_sequences(config, lengths, step)

    if world == 1:
        def loss_fn(m, seqs):
            return reference_loss(m, seqs), {"groups": 1}
        mesh = None
    else:
        parallel.parallelize(model.backbone, "ring", None)  # groups are set per step
        groups = AlignedGroups(world)
        mesh = Mesh(dp_rank=0, dp_size=1, sp_rank=rank, sp_size=world, grad_group=dist.new_group(list(range(world))))

        def loss_fn(m, seqs):
            the_plan = broadcast_plan([len(s) - 1 for s in seqs], world, capacity, cost_model, mode)
            return planned_loss(m, seqs, the_plan, groups, rank), {"groups": len(the_plan.groups)}

    engine = TrainConfig(steps=config.steps, lr=config.lr, weight_decay=0.0, seed=config.seed, device="cpu",
                         progress=progress, progress_desc=f"lm {mode}")
    return fit(model, batch, loss_fn, engine, mesh=mesh, on_step=on_step)
