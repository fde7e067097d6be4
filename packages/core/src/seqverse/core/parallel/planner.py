"""Heterogeneity-adaptive sequence parallelism: FlexSP's MILP (Wang et al. 2025, "FlexSP:
Accelerating Large Language Model Training via Flexible Sequence Parallelism", Sec. 4).

A training batch of long-tailed lengths wastes static SP: every sequence, however short, is split
over all N devices and pays their (often inter-node) all-to-all. FlexSP instead forms SP groups
of different sizes for each step and assigns each sequence to one group, so short sequences run
on small groups (little or no communication) while long ones get the devices their memory needs.
Groups run side by side; the step takes as long as the slowest group.

The MILP over possible groups ``g`` (N/d of each power-of-two size ``d = |g|``) and sequences ``i``:

    minimise  T
    s.t.      sum_g x[i, g] = 1                     every sequence goes to one group
              x[i, g] <= u[g]                       ... that is used
              sum_g |g| u[g] <= N                   the used groups fit on the devices
              sum_i len_i x[i, g] <= |g| C          the group's memory holds its tokens
              sum_i t(len_i, |g|) x[i, g] <= T      every used group finishes by T
              x, u binary

plus two cuts that leave the optimum unchanged and speed up the solver: groups of one size are
used in order (``u[g] >= u[g+1]``), and the device-seconds ``sum |g| t x <= N T``.

solved with ``scipy.optimize.milp`` (HiGHS). ``t(n, d)`` is a :class:`CostModel`.
:func:`plan_ref` solves tiny instances by enumeration, as the check.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CostModel:
    """Seconds to train one sequence of ``n`` tokens on an SP group of ``d`` devices.

    Defaults: a Llama-7B-like model (hidden 4096, 32 layers, 6.7e9 parameters) in bf16 with
    Ulysses all-to-all SP on 8-device nodes, at 150 TFLOP/s per device, 150 GB/s inside a node
    (NVLink) and 20 GB/s between nodes (InfiniBand, per device).
    """

    hidden: int = 4096
    n_layers: int = 32
    n_params: float = 6.7e9
    bytes_per_element: int = 2
    flops_per_device: float = 150e12
    devices_per_node: int = 8
    intra_node_bandwidth: float = 150e9
    inter_node_bandwidth: float = 20e9

    def compute_time(self, n: float, d: int) -> float:
        """``6 N_params n`` for the dense layers + ``6 n^2 hidden`` per layer for causal attention."""
        flops = 6 * self.n_params * n + 6 * n * n * self.hidden * self.n_layers
        return flops / (d * self.flops_per_device)

    def comm_time(self, n: float, d: int) -> float:
        """Ulysses: per layer 4 all-to-alls forward and 4 backward of ``n/d x hidden`` activations."""
        if d == 1:
            return 0.0
        per_device = 8 * self.n_layers * (n / d) * self.hidden * self.bytes_per_element * (d - 1) / d
        bandwidth = self.intra_node_bandwidth if d <= self.devices_per_node else self.inter_node_bandwidth
        return per_device / bandwidth

    def time(self, n: float, d: int) -> float:
        return self.compute_time(n, d) + self.comm_time(n, d)


@dataclass
class Plan:
    """SP groups (device ids), the group of every sequence, and the modelled step times."""

    groups: list[list[int]]
    assignment: list[int]  # index into ``groups`` for each sequence
    step_time: float  # the slowest group's time
    group_times: list[float]
    static_time: float  # one SP group of all devices (sequences one after another)
    status: str = "optimal"
    group_lengths: list[list[int]] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.static_time / self.step_time


def group_slots(n_devices: int) -> list[int]:
    """The sizes of every group that could be formed: N/1 groups of 1, N/2 of 2, ..., 1 of N."""
    if n_devices < 1 or n_devices & (n_devices - 1):
        raise ValueError(f"n_devices must be a power of two, got {n_devices}")
    slots, size = [], 1
    while size <= n_devices:
        slots += [size] * (n_devices // size)
        size *= 2
    return slots


def place(sizes: list[int]) -> list[list[int]]:
    """Device ids for groups of power-of-two ``sizes`` (largest first, each block aligned to its
    size, so a group no larger than a node stays inside one node)."""
    groups, start = [], 0
    for size in sorted(sizes, reverse=True):
        groups.append(list(range(start, start + size)))
        start += size
    return groups


def static_step_time(seq_lens, n_devices: int, cost_model: CostModel) -> float:
    """Static SP: the whole batch on one group of all devices."""
    return sum(cost_model.time(n, n_devices) for n in seq_lens)


def _check(seq_lens, n_devices, device_token_capacity):
    if min(seq_lens) <= 0:
        raise ValueError("sequence lengths must be positive")
    if sum(seq_lens) > n_devices * device_token_capacity:
        raise ValueError(
            f"the batch has {sum(seq_lens)} tokens but {n_devices} devices hold only "
            f"{n_devices * device_token_capacity}: split it into smaller steps"
        )


def plan(
    seq_lens,
    n_devices: int,
    device_token_capacity: int,
    cost_model: CostModel | None = None,
    time_limit: float = 10.0,
    gap: float = 0.01,
) -> Plan:
    """Choose SP groups and assign sequences to them, minimising the modelled step time (MILP)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    cost_model = cost_model or CostModel()
    seq_lens = [int(n) for n in seq_lens]
    _check(seq_lens, n_devices, device_token_capacity)
    slots = group_slots(n_devices)
    n_seq, n_slot = len(seq_lens), len(slots)
    x = lambda i, g: i * n_slot + g  # noqa: E731 - variable index of x[i, g]
    u = lambda g: n_seq * n_slot + g  # noqa: E731
    t_var = n_seq * n_slot + n_slot
    cost = np.array([[cost_model.time(n, d) for d in slots] for n in seq_lens])
    rows, lower, upper = [], [], []

    def constraint(coeffs: dict[int, float], lo: float, hi: float) -> None:
        rows.append(coeffs)
        lower.append(lo)
        upper.append(hi)

    for i in range(n_seq):  # every sequence in exactly one used group
        constraint({x(i, g): 1.0 for g in range(n_slot)}, 1, 1)
        for g in range(n_slot):
            constraint({x(i, g): 1.0, u(g): -1.0}, -np.inf, 0)
    # used groups fit on the devices (power-of-two sizes summing to <= N always pack, see `place`)
    constraint({u(g): float(d) for g, d in enumerate(slots)}, 0, n_devices)
    for g, d in enumerate(slots):
        constraint({x(i, g): float(n) for i, n in enumerate(seq_lens)}, 0, d * device_token_capacity)
        constraint({**{x(i, g): cost[i, g] for i in range(n_seq)}, t_var: -1.0}, -np.inf, 0)
        if g + 1 < n_slot and slots[g + 1] == d:  # interchangeable groups: use them in order
            constraint({u(g): 1.0, u(g + 1): -1.0}, 0, np.inf)
    # device-seconds: groups of total size <= N all busy for at most T (tightens the relaxation)
    constraint(
        {
            **{x(i, g): d * cost[i, g] for i in range(n_seq) for g, d in enumerate(slots)},
            t_var: -float(n_devices),
        },
        -np.inf,
        0,
    )
    matrix = lil_matrix((len(rows), t_var + 1))
    for r, coeffs in enumerate(rows):
        for col, value in coeffs.items():
            matrix[r, col] = value

    upper_bounds = np.ones(t_var + 1)
    for i, n in enumerate(seq_lens):  # a sequence only goes to a group whose memory holds it
        for g, d in enumerate(slots):
            if n > d * device_token_capacity:
                upper_bounds[x(i, g)] = 0
    upper_bounds[t_var] = np.inf
    integrality = np.ones(t_var + 1)
    integrality[t_var] = 0
    objective = np.zeros(t_var + 1)
    objective[t_var] = 1.0
    with _quiet_stdout():  # HiGHS may print solver notes on the C-level stdout (it would spoil --json)
        result = milp(
            objective,
            constraints=LinearConstraint(matrix.tocsr(), lower, upper),
            integrality=integrality,
            bounds=Bounds(np.zeros(t_var + 1), upper_bounds),
            options={"time_limit": time_limit, "mip_rel_gap": gap},
        )
    if result.x is None:
        raise RuntimeError(f"the planner's MILP found no solution: {result.message}")
    chosen = np.round(result.x[: n_seq * n_slot]).reshape(n_seq, n_slot).argmax(1)
    status = f"optimal within {gap:.0%}" if result.status == 0 else f"time limit, gap {result.mip_gap:.1%}"
    return _make_plan(
        seq_lens, [slots[g] for g in chosen], [int(g) for g in chosen], n_devices, cost_model, status
    )


@contextlib.contextmanager
def _quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _make_plan(seq_lens, sizes, group_ids, n_devices, cost_model, status) -> Plan:
    """A :class:`Plan` from each sequence's group size and group id (any hashable, one per group)."""
    used = sorted(set(zip(sizes, group_ids, strict=True)), reverse=True)
    groups = place([d for d, _ in used])
    index = {key: k for k, key in enumerate(used)}
    assignment = [index[key] for key in zip(sizes, group_ids, strict=True)]
    lengths = [[n for n, a in zip(seq_lens, assignment, strict=True) if a == k] for k in range(len(used))]
    times = [sum(cost_model.time(n, len(g)) for n in lens) for g, lens in zip(groups, lengths, strict=True)]
    return Plan(
        groups,
        assignment,
        max(times),
        times,
        static_step_time(seq_lens, n_devices, cost_model),
        status,
        lengths,
    )


def plan_ref(
    seq_lens, n_devices: int, device_token_capacity: int, cost_model: CostModel | None = None
) -> Plan:
    """The same optimum by enumeration (every assignment of sequences to groups): tiny inputs only."""
    cost_model = cost_model or CostModel()
    seq_lens = [int(n) for n in seq_lens]
    _check(seq_lens, n_devices, device_token_capacity)
    slots = group_slots(n_devices)
    best, best_time = None, np.inf
    for chosen in itertools.product(range(len(slots)), repeat=len(seq_lens)):
        used = set(chosen)
        if sum(slots[g] for g in used) > n_devices:
            continue
        if any(
            sum(n for n, c in zip(seq_lens, chosen, strict=True) if c == g) > slots[g] * device_token_capacity
            for g in used
        ):
            continue
        step = max(
            sum(cost_model.time(n, slots[c]) for n, c in zip(seq_lens, chosen, strict=True) if c == g)
            for g in used
        )
        if step < best_time:
            best, best_time = chosen, step
    return _make_plan(seq_lens, [slots[g] for g in best], list(best), n_devices, cost_model, "optimal")


def long_tailed_lengths(n_seq: int, max_len: int, seed: int = 0, min_len: int = 256) -> list[int]:
    """A long-tailed batch: a Pareto (shape 1) between ``min_len`` and ``max_len``, many short
    sequences and a few long ones, as in the corpora FlexSP studies (its Fig. 1)."""
    rng = np.random.default_rng(seed)
    lengths = min_len / rng.uniform(min_len / max_len, 1.0, size=n_seq)  # P(len > x) ~ min_len / x
    return sorted(int(n) for n in np.minimum(lengths, max_len))
