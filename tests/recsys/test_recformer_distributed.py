"""Recformer fine-tuning (one stage-1 epoch and one stage-2 epoch, dropout off) on 2 data-parallel
gloo processes equals one process: per-step losses and the fine-tuned weights. The loss is a mean
over examples, so the engine's share weighting makes it exact. Pre-training (3 steps, dropout off)
too: its contrastive loss gathers every rank's next items as negatives and its means are parts over
global counts (``loss_is_part``). One spawn of 2 processes runs both."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks


def _finetune(out: Path, collect: bool = True) -> dict | None:
    from safetensors.torch import load_file
    from test_recformer_engine import TINY

    from seqverse.recsys import data
    from seqverse.recsys.recformer.model import RecformerConfig
    from seqverse.recsys.recformer.tokenizer import RecformerTokenizer
    from seqverse.recsys.recformer.train import finetune

    ds = data.load_dataset(TINY)
    cfg = RecformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_token_num=96,
                          attention_window=[16, 16], pooler_type="avg", hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    tok = RecformerTokenizer.train([data.item_sentence(a) for a in ds.item_attrs[1:]], max_attr_num=cfg.max_attr_num,
                                   max_attr_length=cfg.max_attr_length, max_item_embeddings=cfg.max_item_embeddings,
                                   max_token_num=cfg.max_token_num)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / "tok.json")
    split = data.make_split(ds, "standard")
    finetune(ds, split, out, copy.deepcopy(cfg), tokenizer_file=out / "tok.json", stage1_epochs=1, stage2_epochs=1,
             batch_size=8, lr=1e-3, seed=3, log=lambda _: None)
    if not collect:  # (only rank 0 writes checkpoints)
        return None
    losses = []
    for stage in ("stage1", "stage2"):
        state = json.loads((out / stage / "checkpoint" / "trainer_state.json").read_text())
        losses += [h["loss"] for h in state["history"]]
    weights = load_file(str(out / "stage2" / "checkpoint" / "model.safetensors"))
    return {"losses": losses, "weights": torch.cat([weights[k].flatten().float() for k in sorted(weights)]).tolist()}


def _pretrain(out: Path, collect: bool = True) -> dict | None:
    """3 pre-training steps on 5 histories a step (3 + 2 rows on 2 ranks), dropout off."""
    from safetensors.torch import load_file
    from test_recformer_engine import TINY

    from seqverse.recsys import data
    from seqverse.recsys.recformer.model import RecformerConfig
    from seqverse.recsys.recformer.train import pretrain

    ds = data.load_dataset(TINY)
    cfg = RecformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_token_num=96,
                          attention_window=[16, 16], pooler_type="avg", hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    last = pretrain(ds, ds.sequences, out, cfg, steps=3, batch_size=5, lr=0.05, seed=7, log=lambda _: None)
    if not collect:  # (only rank 0 writes checkpoints)
        return None
    history = json.loads((out / "checkpoint" / "trainer_state.json").read_text())["history"]
    weights = load_file(str(last / "model.safetensors"))
    return {"losses": [h["loss"] for h in history],
            "weights": torch.cat([weights[k].flatten().float() for k in sorted(weights)]).tolist()}


def _worker(rank, size, init, tmp, out):
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    result = {"finetune": _finetune(Path(tmp) / f"run{rank}", collect=rank == 0),
              "pretrain": _pretrain(Path(tmp) / f"pt{rank}", collect=rank == 0)}
    finish_rank(rank, result, out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one process, two processes): {"finetune": ..., "pretrain": ...} each."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("recformer_dp")
    one = {"finetune": _finetune(base / "one"), "pretrain": _pretrain(base / "pt_one")}
    two = spawn_ranks(_worker, 2)
    return one, two


@pytest.mark.slow
def test_two_processes_equal_one(runs):
    one, two = (r["finetune"] for r in runs)
    assert len(two["losses"]) == len(one["losses"]) > 2
    assert max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True)) < 1e-5


@pytest.mark.slow
def test_pretraining_on_two_processes_equals_one(runs):
    one, two = (r["pretrain"] for r in runs)
    assert len(two["losses"]) == len(one["losses"]) == 3
    # measured: losses 9.5e-7, weights 7.2e-7 (lr 0.05 x warm-up 3/50)
    assert max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True)) < 1e-5
