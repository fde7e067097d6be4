"""The benchmark suites run end to end on tiny settings and report what they measured."""

import json

import pytest
import torch

from seqverse.core import cli
from seqverse.core.bench.speed import SpeedRun, add_ratios, measure, plot, run_speed
from seqverse.core.bench.synthetic import SyntheticRun, param_groups, run_synthetic
from seqverse.core.bench.tasks import IGNORE, induction_heads, mqar, selective_copying


def test_mqar_answers_are_the_values_of_the_queried_keys():
    inputs, targets = mqar(8, seq_len=64, vocab_size=64, num_kv_pairs=4, seed=1)
    for row, target in zip(inputs.tolist(), targets.tolist()):
        pairs = dict(zip(row[0:8:2], row[1:8:2]))
        asked = [(t, row[t]) for t in range(8, 64) if target[t] != IGNORE]
        assert len(asked) == 4
        assert all(target[t] == pairs[key] for t, key in asked)


def test_mqar_zero_gaps_leave_only_the_queries_in_the_query_region():
    noisy, targets = mqar(8, seq_len=64, vocab_size=64, num_kv_pairs=4, seed=1)
    zero, zero_targets = mqar(8, seq_len=64, vocab_size=64, num_kv_pairs=4, random_non_queries=False, seed=1)
    assert torch.equal(targets, zero_targets) and torch.equal(noisy[:, :8], zero[:, :8])
    asked = zero_targets[:, 8:] != IGNORE
    assert torch.equal(zero[:, 8:][asked], noisy[:, 8:][asked])
    assert (zero[:, 8:][~asked] == 0).all() and (noisy[:, 8:][~asked] != 0).any()


def test_selective_copying_targets_are_the_data_tokens_in_order():
    inputs, targets = selective_copying(4, seq_len=32, num_tokens=5, vocab_size=10, seed=2)
    for row, target in zip(inputs.tolist(), targets.tolist()):
        data = [v for v in row[:32] if v != 0]
        assert target[32:] == data and row[32:] == [1] * 5


def test_induction_target_is_the_token_after_the_special_token():
    inputs, targets = induction_heads(4, seq_len=20, vocab_size=8, seed=3)
    for row, target in zip(inputs.tolist(), targets.tolist()):
        where = row.index(7)
        assert target[-1] == row[where + 1] and row[-1] == 7


def test_param_groups_keep_ssm_overrides():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    model[0].bias._optim = {"lr": 1e-3, "weight_decay": 0.0}
    groups = param_groups(model, 0.1)
    assert {(g.get("lr"), g["weight_decay"], len(g["params"])) for g in groups} == {(None, 0.1, 1), (1e-3, 0.0, 1)}


def test_attention_learns_induction_heads():
    """A 2-layer attention model must solve a small induction task (chance is 1/7)."""
    run = SyntheticRun(task="induction", backbone="attention", task_options={"seq_len": 24, "vocab_size": 8},
                       d_model=32, steps=300, batch_size=32, lr=3e-3, test_size=200)
    result = run_synthetic(run, progress=False, device="cpu")
    assert result["test_accuracy"] > 0.9, result


def test_speed_reports_what_its_clock_measured(monkeypatch):
    """The numbers are the clock's: the warm-up pass is dropped, the best of the rest gives tokens/s
    (batch x length / seconds), step latency is the timed steps over their count (a fake clock)."""
    from types import SimpleNamespace

    from seqverse.core.bench import speed

    ticks = iter([0.0, 10.0,  # warm-up pass: 10 s, dropped
                  10.0, 10.4,  # 0.4 s
                  10.4, 10.6,  # 0.2 s: the best
                  10.6, 10.92])  # two recurrent steps: 0.32 s
    monkeypatch.setattr(speed, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    row = measure(SpeedRun(backbone="s4d", seq_len=64, d_model=16, batch_size=3, repeats=2, step_repeats=2))
    assert row["fwd_bwd_seconds"] == pytest.approx(0.2)
    assert row["tokens_per_second"] == pytest.approx(3 * 64 / 0.2)
    assert row["step_latency_ms"] == pytest.approx(160.0)


def test_speed_measures_in_process_and_isolated(tmp_path):
    rows = run_speed(["s4d", "attention"], [64], progress=False, d_model=16, repeats=1, step_repeats=2)
    assert all("error" not in r for r in rows), rows
    assert [r["speedup_vs_attention"] for r in rows if r["backbone"] == "attention"] == [1.0]
    plot(rows, str(tmp_path / "speed.png"))
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"


def test_ratios_skip_failed_runs():
    rows = add_ratios([{"backbone": "attention", "seq_len": 8, "error": "oom"},
                       {"backbone": "s4d", "seq_len": 8, "tokens_per_second": 5.0}])
    assert "speedup_vs_attention" not in rows[1]


def test_cli_synthetic_json(capsys):
    argv = ["bench", "synthetic", "--task", "mqar", "--backbone", "s4d", "--seq-len", "32", "--vocab-size", "32",
            "--num-kv-pairs", "4", "--steps", "3", "--d-model", "16", "--json"]
    assert cli.main(argv) == 0
    (row,) = json.loads(capsys.readouterr().out)
    # the flags reach the run: the same run called directly gives the same (seeded) numbers
    direct = run_synthetic(SyntheticRun(task="mqar", backbone="s4d", d_model=16, steps=3,
                                        task_options={"seq_len": 32, "vocab_size": 32, "num_kv_pairs": 4}),
                           progress=False, device="cpu")
    assert row["task_options"] == direct["task_options"] == {"seq_len": 32, "vocab_size": 32, "num_kv_pairs": 4}
    assert (row["steps"], row["d_model"], row["params"]) == (3, 16, direct["params"])
    assert row["final_loss"] == pytest.approx(direct["final_loss"], rel=1e-5)
    assert row["test_accuracy"] == pytest.approx(direct["test_accuracy"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "synthetic", "--task", "mqar", "--backbone", "rnn"], "unknown backbone 'rnn'"),
        (["bench", "synthetic", "--task", "mqar", "--backbone", "s4d", "--seq-len", "16"], "too short"),
        (["bench", "speed", "--seq-len", "10,x"], "argument --seq-len: expected an integer, got 'x'"),
    ],
)
def test_cli_bad_input_exits_2_with_a_clear_message(argv, message, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_demo_checks_step_against_forward(capsys):
    from seqverse.core.backbones import NAMES

    assert cli.main(["demo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["backbone"] for r in rows] == list(NAMES)
    assert all(r["ok"] == "yes" and r["step_vs_forward_rel_err"] < 1e-4 and r["params"] > 1000 for r in rows), rows
