"""Recformer pre-training and fine-tuning through seqverse.core.train against the loops they had
before the engine (same losses step by step), and fine-tuning resumed mid-stage equal to an
uninterrupted run."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import torch

from seqverse.recsys import data
from seqverse.recsys.recformer.model import RecformerConfig, RecformerForPretraining, RecformerForSeqRec
from seqverse.recsys.recformer.tokenizer import RecformerTokenizer
from seqverse.recsys.recformer.train import (
    _mask_mlm,
    encode_all_items,
    encode_history,
    encode_items,
    finetune,
    pretrain,
    seqrec_loss,
)

TINY = Path(__file__).resolve().parents[1] / "data" / "recformer" / "tiny"


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    ds = data.load_dataset(TINY)
    cfg = RecformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_token_num=96,
                          attention_window=[16, 16], pooler_type="avg")
    tok = RecformerTokenizer.train([data.item_sentence(a) for a in ds.item_attrs[1:]], max_attr_num=cfg.max_attr_num,
                                   max_attr_length=cfg.max_attr_length, max_item_embeddings=cfg.max_item_embeddings,
                                   max_token_num=cfg.max_token_num)
    cfg.vocab_size = tok.vocab_size
    return ds, cfg, tok, encode_items(tok, ds)


def _metric_losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_pretraining_reproduces_the_reference_loop(tiny, tmp_path):
    ds, cfg, tok, items = tiny
    sequences, steps, batch_size, lr, seed = ds.sequences, 3, 2, 1e-3, 7
    torch.manual_seed(seed)
    model = RecformerForPretraining(copy.deepcopy(cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    users = [u for u, s in enumerate(sequences) if len(s) >= 2]
    rnd, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    model.train()
    expected = []
    for step in range(steps):  # the loop pretrain had before the engine
        a, b = [], []
        for u in rnd.sample(users, batch_size):
            seq = sequences[u]
            pos = rnd.randint((len(seq) - 1) // 2, len(seq) - 1)
            a.append(tok.encode([items[i] for i in seq[:pos]]))
            b.append(tok.encode([items[seq[pos]]]))
        a, b = tok.pad(a), tok.pad(b)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50)
        loss, _ = model(a, b, _mask_mlm(a, tok, 0.15, gen), _mask_mlm(b, tok, 0.15, gen))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        expected.append(loss.item())
    # pretrain trains its own tokenizer from the dataset, as the fixture does
    pretrain(ds, sequences, tmp_path / "pt", copy.deepcopy(cfg), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
             log=lambda _: None)
    history = json.loads((tmp_path / "pt" / "checkpoint" / "trainer_state.json").read_text())["history"]
    got = [h["loss"] for h in history]
    assert len(got) == steps and max(abs(x - y) for x, y in zip(got, expected, strict=True)) < 1e-5


def reference_stage1_losses(ds, cfg, tok, items, split, epochs, batch_size, lr, seed):
    """Stage 1 of the loop finetune had before the engine (I re-encoded every epoch)."""
    torch.manual_seed(seed)
    model = RecformerForSeqRec(copy.deepcopy(cfg))
    model.init_item_embedding(encode_all_items(model.longformer, tok, items))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    examples = [u for u in split.users if split.train[u]]
    unseen = torch.tensor(sorted(split.cold_items), dtype=torch.long) if split.cold_items else None
    losses = []
    for epoch in range(epochs):
        model.init_item_embedding(encode_all_items(model.longformer, tok, items))
        rnd = random.Random(seed * 1000 + 100 + epoch)
        order = list(examples)
        rnd.shuffle(order)
        model.train()
        for s in range(0, len(order), batch_size):
            hist, labels = [], []
            for u in order[s:s + batch_size]:
                seq = split.train[u]
                pos = rnd.randint(0, len(seq) - 1)
                hist.append(encode_history(tok, items, seq[:pos]))
                labels.append(seq[pos])
            loss = seqrec_loss(model, tok.pad(hist), torch.tensor(labels), unseen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
    return losses


@pytest.mark.slow
def test_finetuning_reproduces_the_reference_loop_and_resumes_mid_stage(tiny, tmp_path, monkeypatch):
    ds, cfg, tok, items = tiny
    tok.save(tmp_path / "tok.json")
    split = data.make_split(ds, "standard")
    kw = dict(tokenizer_file=tmp_path / "tok.json", stage1_epochs=2, stage2_epochs=1, batch_size=8, lr=1e-3, seed=3,
              patience=5, log=lambda _: None)
    expected = reference_stage1_losses(ds, cfg, tok, items, split, 2, 8, 1e-3, 3)
    finetune(ds, split, tmp_path / "a", copy.deepcopy(cfg), **kw)
    got = _metric_losses(tmp_path / "a" / "stage1")
    assert len(got) == len(expected) and max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-5
    # stopped after one step of stage 1's second epoch, then resumed: same stage-1 and stage-2 losses
    per_epoch = len(expected) // 2
    from seqverse.core.train import engine

    real_fit = engine.fit

    def stop_early(*args, **kwargs):  # the first call (stage 1) stops at one step into epoch 2
        args[3].stop_step = per_epoch + 1
        return real_fit(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr("seqverse.core.train.fit", stop_early)
        state = finetune(ds, split, tmp_path / "b", copy.deepcopy(cfg), **kw)
    assert state["stage"] == 1
    finetune(ds, split, tmp_path / "b", copy.deepcopy(cfg), **kw)
    for stage in ("stage1", "stage2"):
        assert _metric_losses(tmp_path / "b" / stage) == _metric_losses(tmp_path / "a" / stage)
