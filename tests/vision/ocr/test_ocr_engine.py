"""OCR training through seqverse.core.train against the plain loop it had before the engine, and
its batch stream resuming from the checkpointed position (no re-rendering)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks

from seqverse.vision.ocr.model import CharTokenizer, ChunkProcessor, OCRConfig, build_model
from seqverse.vision.ocr.train import TrainConfig, ctc_loss, make_batch, train


def tiny_config(**kw) -> TrainConfig:
    model = OCRConfig(image_height=32, image_width=128, stem_channels=(8, 8, 16, 16), encoder_dim=32, decoder_dim=32,
                      decoder_layers=1, max_length=48)
    return TrainConfig(**{**dict(steps=3, batch_size=2, warmup=2, line_steps=2, grow_steps=2, bands_per_page=2,
                                 eval_every=100, save_every=2, val_bands=0, model=model), **kw})


def reference_losses(tc: TrainConfig, n_steps: int) -> list[float]:
    """The OCR training loop before the engine (its lr, CE + CTC loss, clipping, AdamW 0.9/0.98)."""
    torch.manual_seed(tc.seed)
    tok = CharTokenizer()
    model = build_model(tc.model, len(tok))
    model.train()
    proc = ChunkProcessor(tc.model, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=0.01, betas=(0.9, 0.98))
    rng = random.Random(tc.seed * 7919)
    losses = []
    for step in range(n_steps):
        lr = tc.lr * min(1.0, (step + 1) / tc.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / tc.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, texts = make_batch(tc, proc, tok, step, rng)
        enc = model.encoder(pixel_values=x)
        loss = model(encoder_outputs=enc, labels=y).loss
        aux = ctc_loss(model, enc.last_hidden_state, x.shape[2], texts, tok)
        if aux is not None:
            loss = loss + tc.ctc_weight * aux
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def _losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_training_reproduces_the_reference_loop_across_a_resume(tmp_path):
    """The engine's losses equal the old loop's; the run is stopped after step 2 (its checkpoint holds
    the batch stream's position) and resumed, so the third loss also shows the stream continued."""
    torch.set_num_threads(1)
    tc = tiny_config()
    expected = reference_losses(tc, 3)
    assert train(tmp_path / "run", tc, progress=False, log=lambda s: None, stop_step=2)["step"] == 2
    assert json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["data_state"]["step"] == 2
    state = train(tmp_path / "run", tc, progress=False, log=lambda s: None)
    assert state["step"] == 3 and (tmp_path / "run" / "last" / "model.safetensors").is_file()
    got = _losses(tmp_path / "run")
    assert len(got) == 3 and max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-5


# ------------------------------------------------------------------ data parallelism
# Training on 2 gloo processes equals one process: the loss is written as parts over global counts
# (ocr_loss), and the conv stem's BatchNorms become GlobalBatchNorm on CPU, so each rank normalises
# with the statistics of the whole batch (4 bands split 2 + 2), as one process does.


def _ocr_run(out: Path, collect: bool = True) -> dict | None:
    from safetensors.torch import load_file

    train(out, tiny_config(batch_size=4), progress=False, log=lambda s: None)
    if not collect:  # (only rank 0 writes)
        return None
    weights = load_file(str(out / "last" / "model.safetensors"))
    assert any("running_mean" in k for k in weights)  # the BatchNorms' statistics are compared too
    return {"losses": _losses(out), "weights": torch.cat([weights[k].flatten().double() for k in sorted(weights)]).tolist()}


def _worker(rank, size, init, tmp, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    result = _ocr_run(Path(tmp) / f"run{rank}", collect=rank == 0)
    finish_rank(rank, result, out)


@pytest.mark.slow
def test_training_on_two_processes_equals_one(tmp_path):
    torch.set_num_threads(1)
    one = _ocr_run(tmp_path / "one")
    two = spawn_ranks(_worker, 2)
    assert len(two["losses"]) == len(one["losses"]) == 3
    # measured: losses 2.4e-7, weights 3.7e-6; with each rank's BatchNorm on its own rows (the engine
    # before GlobalBatchNorm) 4.6e-3 and 8.8e-2
    assert max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True)) < 1e-5


def test_an_exported_model_loads_with_its_card_and_ordinary_file_modes(tmp_path):
    """``ocr export`` copies a run's model with a model card; every file 0644 (safetensors writes 0600)."""
    from seqverse.vision.ocr.model import load
    from seqverse.vision.ocr.train import export

    torch.set_num_threads(1)
    train(tmp_path / "run", tiny_config(steps=2), progress=False, log=lambda s: None)
    assert (tmp_path / "run" / "last" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    out = export(tmp_path / "run", tmp_path / "model", command="tiny run")
    assert sorted(f.name for f in out.iterdir()) == ["README.md", "config.json", "generation_config.json",
                                                     "model.safetensors", "ocr_config.json", "ocr_vocab.json"]
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in out.iterdir())
    assert "tiny run" in (out / "README.md").read_text()
    model, proc = load(out)
    assert proc.cfg.default_chunks == 15 and proc.cfg.reading == {}
