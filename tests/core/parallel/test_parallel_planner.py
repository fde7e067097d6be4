"""The FlexSP planner: its MILP finds the enumerated optimum and beats static SP on long tails."""

from __future__ import annotations

import pytest

from seqverse.core.parallel.planner import CostModel, long_tailed_lengths, place, plan, plan_ref

SMALL = CostModel(devices_per_node=2)  # 4 devices on 2 nodes: groups of 4 cross the slow link


@pytest.mark.parametrize(
    "lengths", [[500, 900, 3000, 7000, 16000], [4000, 4000, 4000, 4000, 30000], [800] * 5]
)
def test_milp_finds_the_enumerated_optimum(lengths):
    best = plan_ref(lengths, 4, 16384, SMALL)
    found = plan(lengths, 4, 16384, SMALL, gap=1e-9)
    assert found.step_time == pytest.approx(best.step_time, rel=1e-9)
    assert sum(len(g) for g in found.groups) <= 4 and len(found.assignment) == len(lengths)


def test_plan_respects_memory_and_devices():
    lengths = [60000, 2000, 1000, 500, 500, 300]
    result = plan(lengths, 8, 16384, CostModel(devices_per_node=4))
    devices = [d for g in result.groups for d in g]
    assert len(devices) == len(set(devices)) and set(devices) <= set(range(8))
    for group, assigned in zip(result.groups, result.group_lengths, strict=True):
        assert sum(assigned) <= len(group) * 16384
    assert len(result.groups[result.assignment[0]]) >= 4  # 60k tokens need 4 devices of 16k


def test_planner_beats_static_sp_on_a_long_tailed_batch():
    lengths = long_tailed_lengths(12, 32768, seed=1, min_len=512)
    result = plan(lengths, 8, 16384, CostModel(devices_per_node=4), time_limit=20)
    assert result.step_time < 0.9 * result.static_time, (result.step_time, result.static_time)


def test_place_aligns_groups():
    assert place([1, 4, 2, 1]) == [[0, 1, 2, 3], [4, 5], [6], [7]]


def test_batch_too_large_is_named():
    with pytest.raises(ValueError, match="split it into smaller steps"):
        plan([20000, 20000], 2, 16384)
