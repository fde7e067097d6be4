"""The embedded default checkpoints: small, documented, and `recommend` / `evaluate` work out of the box."""

import json
from pathlib import Path

import pytest

from seqverse.recsys import cli, data
from seqverse.recsys.recformer.api import DEFAULT_MODELS

TINY = str(Path(__file__).resolve().parents[1] / "data" / "recformer" / "tiny")


@pytest.mark.parametrize("split", ["standard", "cold-start"])
def test_checkpoint_is_small_and_has_a_model_card(split):
    d = DEFAULT_MODELS[split]
    assert sum(p.stat().st_size for p in d.iterdir()) <= 10 * 2**20
    card = (d / "README.md").read_text()
    assert "train_recformer.py" in card and "NDCG@10" in card


def test_recommend_for_a_user(capsys):
    assert cli.main(["recformer", "recommend", "--user", "196", "-k", "10", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == list(range(1, 11))
    assert all(r["title"] for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    ds = data.load_dataset()
    seen = {ds.item_tokens[i] for i in ds.sequences[ds.user_index("196")]}
    assert not seen & {r["item_id"] for r in rows}


def test_unknown_user_exit_2(capsys):
    assert cli.main(["recformer", "recommend", "--user", "no-such-user"]) == 2
    assert "unknown user id 'no-such-user'" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_json_on_other_data(capsys):
    # another RecBole directory: items are encoded from their text with the default model
    import math

    from seqverse.recsys import data as D
    from seqverse.recsys.recformer import api

    assert cli.main(["recformer", "evaluate", "--data", TINY, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # the same numbers by hand: each test user's full-ranking rank of the target, one history at a time
    rec = api.load(None, TINY)
    sp = D.make_split(rec.dataset, "standard")
    ranks = []
    for u in sp.users:
        scores = api._scores(rec, [sp.history(u, "test")])[0].tolist()
        target = sp.target(u, "test")
        ranks.append(1 + sum(scores[i] > scores[target] for i in range(1, len(scores)) if i != target))
    hits = [r for r in ranks if r <= 10]
    assert out["recall@10"] == pytest.approx(len(hits) / len(ranks), abs=1e-4)
    assert out["ndcg@10"] == pytest.approx(sum(1 / math.log2(r + 1) for r in hits) / len(ranks), abs=1e-4)
    assert out["mrr@10"] == pytest.approx(sum(1 / r for r in hits) / len(ranks), abs=1e-4)
    assert 0 < len(hits) < len(ranks)  # neither all nor none: the comparison has something to compare


@pytest.mark.parametrize("split", ["standard", "cold-start"])
def test_evaluate_reprints_the_model_cards_test_numbers(split, capsys):
    import re

    card = (DEFAULT_MODELS[split] / "README.md").read_text()
    want = re.search(r"NDCG@10 (\d\.\d{4}), Recall@10 (\d\.\d{4}), MRR@10 (\d\.\d{4})", card).groups()
    assert cli.main(["recformer", "evaluate", "--split", split, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert tuple(f"{out[m]:.4f}" for m in ("ndcg@10", "recall@10", "mrr@10")) == want
