"""ProLLaMA's two LoRA stages on 2 data-parallel gloo processes equal one process (losses per step,
final merged weights). Stage 1's packed blocks all have one length (per-row means combine by the
engine's row shares); stage 2's answer-only loss is written as this rank's sum over its answer
tokens / the answer tokens of both ranks (``answer_loss_part``, ``TrainConfig.loss_is_part``), since
the two ranks' rows hold different numbers of answer tokens. LoRA dropout off (its masks depend on
how the rows are split)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks

TEXT = ("the quick brown fox jumps over the lazy dog\n" * 40 + "Seq=<MKVLAAGIVALLLAAGCSSSKEETPKAEEAPAA>\n" * 5)
EXAMPLES = [("a", "MKVLA", "fn3"), ("b", "MAAGGKVLLLAAGCS", "Pkinase"), ("c", "MKV", "fn3"),
            ("d", "MSSSKEETPKAEEAPAAGG", "Pkinase")]


def _base(folder: Path) -> Path:
    from seqverse.genomics.prollama import base

    (folder / "text.txt").write_text(TEXT)
    tok = base.train_tokenizer(folder / "text.txt", vocab_size=300)
    model = base.new_model(tok, base.BaseConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, max_position_embeddings=512))
    model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    return folder / "model"


def _train(base_dir: str, out: Path) -> dict:
    from seqverse.genomics.prollama import stages

    model, tok = stages.load_causal_lm(base_dir)
    s1 = dataclasses.replace(stages.STAGE1, dropout=0.0, lr=1e-3, warmup=0.0)
    blocks = stages.pack_texts(tok, ["Seq=<MKVLAAGIVALLLAAGCSSSK>", "Seq=<MSSSKEETPKAEEAPAA>"] * 6, 16)
    model, r1, _ = stages._train_lora(model, s1, stages.ListDataset(blocks), stages.block_loss, out / "s1", 3, 4, 0,
                                      progress=False)
    s2 = dataclasses.replace(stages.STAGE2, dropout=0.0, lr=1e-3, warmup=0.0)
    records = stages.instruction_records(EXAMPLES)
    random.Random(0).shuffle(records)
    data = stages.ListDataset([stages.encode_instruction(tok, r, 448) for r in records])
    model, r2, _ = stages._train_lora(model, s2, data, stages.answer_loss_part, out / "s2", 3, 4, 0,
                                      collate_fn=stages.collate_instructions(tok.pad_token_id), loss_is_part=True,
                                      progress=False)
    state = model.state_dict()
    return {"losses": r1.losses() + r2.losses(),
            "weights": torch.cat([state[k].detach().float().flatten() for k in sorted(state)]).tolist()}


def _worker(rank, size, init, base_dir, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    finish_rank(rank, _train(base_dir, Path(base_dir).parent / f"r{rank}"), out)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    base_dir = _base(tmp_path)
    one = _train(str(base_dir), tmp_path / "one")
    two = spawn_ranks(_worker, 2, str(base_dir))
    assert len(two["losses"]) == len(one["losses"]) == 6
    dl = max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True))
    dw = max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True))
    print(f"prollama 2 vs 1 process: losses {dl:.2g}, weights {dw:.2g}")
    assert dl < 1e-5
    assert dw < 1e-5
