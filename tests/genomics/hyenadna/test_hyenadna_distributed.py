"""HyenaDNA training on 2 gloo processes equals one process (losses per step, final weights):
data-parallel pre-training and fine-tuning, and pre-training with every window split over
2 sequence-parallel ranks (Hyena's long convolutions exact across the blocks)."""

from __future__ import annotations

import hyenadna_workers
import pytest

TOL = 1e-5


@pytest.fixture(scope="module")
def runs():
    names = ["pretrain_dp", "pretrain_sp", "finetune_dp"]
    one = hyenadna_workers.run(["pretrain_dp", "finetune_dp"], 1)
    return one, hyenadna_workers.run(names, 2)


def _close(a, b):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b, strict=True)) < TOL


@pytest.mark.slow
@pytest.mark.parametrize("case", ["pretrain_dp", "pretrain_sp"])
def test_pretraining_on_two_processes_equals_one(runs, case):
    one, two = runs
    ref = one["pretrain_dp"][0]
    assert ref["seq_len"] == [8, 16, 32, 32] and ref["losses"][-1] < ref["losses"][0]
    for rank in two[case]:
        assert _close(rank["losses"], ref["losses"]), (rank["losses"], ref["losses"])
        assert _close(rank["weights"], ref["weights"])


@pytest.mark.slow
def test_finetuning_on_two_processes_equals_one(runs):
    one, two = runs
    for rank in two["finetune_dp"]:
        assert _close(rank["train_loss"] + [rank["final"]], one["finetune_dp"][0]["train_loss"] + [one["finetune_dp"][0]["final"]])
