"""`seqverse bench parallel`'s report says what it measured: counted payload (not wire traffic),
and load balance as causal pairs and as time (issue 21)."""

import pytest

from seqverse.core.parallel.bench import balance, formula_bytes, measure


def test_balance_reports_pairs_and_time():
    row = balance([528, 1552], [1.0, 3.0])
    assert row["pairs_per_rank"] == [528, 1552] and row["seconds_per_rank"] == [1.0, 3.0]
    assert row["pairs_max_over_mean"] == pytest.approx(1552 / 1040) and row["pairs_min_over_mean"] == pytest.approx(528 / 1040)
    assert row["time_max_over_mean"] == pytest.approx(1.5) and row["time_min_over_mean"] == pytest.approx(0.5)


@pytest.mark.slow
def test_workers_count_payload_pairs_and_time():
    """Two gloo processes, L = 64 (small heads): the counted payload of each rank equals the formula,
    ring attention's causal pairs of rank r are n(n+1)/2 + r n^2 (n = L/P = 32), LightSeq's are equal,
    and every rank reports its own time."""
    jobs = [{"method": m, "attention": "MHA", "batch": 1, "length": 64, "heads": 2, "kv_heads": 2, "head_dim": 8}
            for m in ("ring", "lightseq")]
    per_rank = measure(2, jobs)
    for j, job in enumerate(jobs):
        assert [per_rank[r][j]["bytes"] for r in range(2)] == [formula_bytes(job["method"], 2, 1, 64, 2, 2, 8)] * 2
        assert all(per_rank[r][j]["seconds"] > 0 for r in range(2))
    ring = balance([per_rank[r][0]["work"] for r in range(2)], [per_rank[r][0]["seconds"] for r in range(2)])
    lightseq = balance([per_rank[r][1]["work"] for r in range(2)], [per_rank[r][1]["seconds"] for r in range(2)])
    assert ring["pairs_per_rank"] == [528, 528 + 1024] and ring["pairs_max_over_mean"] > 1.4
    assert lightseq["pairs_per_rank"] == [1040, 1040] and lightseq["pairs_max_over_mean"] == 1.0
