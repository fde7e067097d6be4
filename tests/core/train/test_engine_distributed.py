"""The engine on 2 data-parallel gloo processes against one (the DP x SP mesh: tests/core/parallel).

Per-step losses and final weights must agree within float tolerance: DDP's averaged gradients
with the engine's share weighting are the single-process gradients of the same global batches.
The dataset case has a parameter that never gets a gradient and an uneven last batch.
"""

from __future__ import annotations

import engine_workers
import pytest

TOL = 1e-5


@pytest.fixture(scope="module")
def two_processes():
    names = ["dataset", "stream", "synthetic"]
    return engine_workers.run_case(names, 1), engine_workers.run_case(names, 2)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["dataset", "stream"])
def test_two_gloo_processes_equal_one(two_processes, case):
    one, two = two_processes
    for key in (f"{case}/losses", f"{case}/weights"):
        for per_rank in two[key]:
            assert len(per_rank) == len(one[key])
            assert max(abs(a - b) for a, b in zip(per_rank, one[key], strict=True)) < TOL, key
    assert one[f"{case}/losses"][-1] < one[f"{case}/losses"][0]


@pytest.mark.slow
def test_synthetic_benchmark_on_two_processes_equals_one(two_processes):
    """core's own training path (mean final loss, test accuracy) data parallel = one process."""
    one, two = two_processes
    for per_rank in two["synthetic/losses"]:
        assert abs(per_rank[0] - one["synthetic/losses"][0]) < TOL and per_rank[1] == one["synthetic/losses"][1]
