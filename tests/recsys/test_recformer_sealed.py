"""Issue 28's CPU-sized sealed comparison: items encoded in length order equal the plain order, a
run without a pre-training stage, and the CPU edition's selection rule (re-encoding eligibility)."""

import json
from pathlib import Path

import pytest
import torch
from script_module import load_script

from seqverse.recsys import data
from seqverse.recsys.recformer import api
from seqverse.recsys.recformer.model import RecformerConfig, RecformerForSeqRec
from seqverse.recsys.recformer.tokenizer import RecformerTokenizer
from seqverse.recsys.recformer.train import encode_all_items, encode_items

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "recformer" / "tiny"
SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "num_hidden_layers": 1,
         "attention_window": [16], "max_token_num": 64, "pooler_type": "avg"}


@pytest.mark.slow
def test_items_encoded_by_length_equal_the_plain_order():
    ds = data.load_dataset(TINY)
    cfg = RecformerConfig(**SMALL)
    tok = RecformerTokenizer.train([data.item_sentence(a) for a in ds.item_attrs[1:]], max_token_num=64)
    cfg.vocab_size = tok.vocab_size
    items = encode_items(tok, ds)
    assert len({len(ids) for ids, _ in items}) > 2  # items of several lengths: the orders differ
    torch.manual_seed(0)
    enc = RecformerForSeqRec(cfg).longformer
    plain = encode_all_items(enc, tok, items, batch_size=4, by_length=False)
    fast = encode_all_items(enc, tok, items, batch_size=4)
    assert fast.shape == plain.shape
    assert torch.allclose(fast, plain, atol=1e-5), (fast - plain).abs().max()
    shuffled = encode_all_items(enc, tok, items[::-1], batch_size=4)  # rows follow the given order
    assert torch.allclose(shuffled.flip(0), plain, atol=1e-5)


@pytest.mark.slow
def test_training_without_a_pretraining_stage(tmp_path):
    """``pretrain_steps=0``: fine-tuning starts from the initial encoder; nothing is pre-trained."""
    res = api.train(tmp_path / "run", TINY, pretrain_steps=0, stage1_epochs=1, stage2_epochs=1, batch_size=8,
                    evaluate_test=False, log=lambda m: None, config_overrides=dict(SMALL))
    assert not (tmp_path / "run" / "pretrain").exists()
    assert [e["stage"] for e in res["epochs"]] == [1, 2] and res["finished"]
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def _driver():
    return load_script("benchmarks/recsys/recformer/sealed_comparison.py")


@pytest.mark.parametrize("paper, items, expected", [
    ((0.030, 0.028), (0.040, 0.020), "paper"),          # items-align1 better but loses 50% re-encoded
    ((0.030, 0.028), (0.040, 0.035), "items-align1"),   # both eligible: the higher validation
    ((0.030, 0.010), (0.040, 0.020), "items-align1"),   # none eligible: the higher of all
    ((0.0395, 0.039), (0.040, 0.039), "paper"),         # under 0.001 apart: paper
])
def test_cpu_selection_rule(tmp_path, paper, items, expected):
    sc = _driver()
    sc.set_protocol("cpu")
    sc.RUNS = tmp_path
    sc.CANDIDATES = {"paper": {}, "items-align1": {}}  # two candidates, listed in this order
    for name, (valid, text) in (("paper", paper), ("items-align1", items)):
        d = tmp_path / "recformer" / f"{name}-seed2020"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"best_valid_ndcg@10": valid, "valid_text_I": {"ndcg@10": text}}))
    assert sc.finalist() == expected


def test_validation_users_are_a_fixed_sorted_subset():
    from seqverse.recsys.recformer.train import validation_users

    split = data.make_split(data.load_dataset(TINY), "standard")
    n = len(split.users) // 2
    a, b = validation_users(split, n), validation_users(split, n)
    assert a == b and a == sorted(a) and len(set(a)) == n and set(a) <= set(split.users)
    assert validation_users(split, 0) is None and validation_users(split, len(split.users)) is None
