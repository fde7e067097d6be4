"""`seqverse-recsys recformer ...`: JSON output, and bad input as one clear line with exit status 2."""

import json
from pathlib import Path

from seqverse.recsys import cli

TINY = str(Path(__file__).resolve().parents[1] / "data" / "recformer" / "tiny")


def test_popularity_json(capsys):
    assert cli.main(["recformer", "popularity", "--data", TINY, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"ndcg@10", "recall@10", "mrr@10"}
    assert 0 < out["ndcg@10"] <= out["recall@10"] <= 1


def test_bad_timestamp_is_one_line_naming_file_and_line(tmp_path, capsys):
    (tmp_path / "x.item").write_text("item_id:token\ttitle:token_seq\na\tA\n")
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\ta\tnoon\n")
    assert cli.main(["recformer", "popularity", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x.inter:2: timestamp 'noon' is not a number" in err


def test_missing_column_exit_2(tmp_path, capsys):
    (tmp_path / "x.item").write_text("item_id:token\ttitle:token_seq\na\tA\n")
    (tmp_path / "x.inter").write_text("user_id:token\titem:token\ttimestamp:float\n1\ta\t1\n")
    assert cli.main(["recformer", "popularity", "--data", str(tmp_path)]) == 2
    assert "x.inter:1: missing column 'item_id'" in capsys.readouterr().err


def test_train_with_item_fine_tuning_then_evaluate_the_result(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["recformer", "train", "--data", TINY, "--out", str(out), "--pretrain-steps", "3",
                     "--stage1-epochs", "1", "--stage2-epochs", "1", "--item-lr", "1e-3", "--stage2-decay",
                     "--hidden-size", "32", "--layers", "1", "--max-token-num", "96", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["finished"] is True
    assert json.loads((out / "model" / "config.json").read_text())["split_seed"] == 2020  # recorded for evaluate
    assert cli.main(["recformer", "evaluate", "--data", TINY, "--model", str(out / "model"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == {k: trained[k] for k in again}
