"""OAT training on 2 data-parallel gloo processes equals one process (losses per step, final
weights): each rank takes whole displays with all their scanpaths (``shard_displays``), the
cross-entropy written as this rank's sum over the non-PAD targets of every rank
(``TrainConfig.loss_is_part``). At the official lr 1e-4, dropout off.

Left out of the weight comparison: the readout bias and the attention key biases, whose true
gradient is 0 (each shifts all scores of a softmax alike); Adam scales their rounding-level
gradients up to steps of ~lr, so there the two runs differ by ~1e-4 without any error.
Measured: losses 2.4e-7, weights 2.5e-6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks

TINY = dict(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=2, dim_feedforward=32, max_len=8,
            table_size=8, dropout=0.0)  # dropout off: its masks depend on how the rows are split


def _write_displays(folder: Path, n: int = 6, people: int = 3) -> Path:
    from PIL import Image, ImageDraw

    from seqverse.vision.oat import synth

    rng = np.random.default_rng(0)
    products = synth.make_products(12)
    boxes = synth.grid_layout(4, 2)
    img = Image.new("RGB", (synth.WIDTH, synth.HEIGHT), (200, 200, 200))
    draw = ImageDraw.Draw(img)
    for p, b in zip(products, boxes, strict=False):
        synth.draw_product(draw, p, b)
    img.save(folder / "shelf.png")
    objects = [{"xmin": float(b[0]), "xmax": float(b[2]), "ymin": float(b[1]), "ymax": float(b[3])} for b in boxes]
    recs = {}
    for k in range(n):
        t = k % 7 + 1
        fix = {str(i): synth.simulate_search(boxes, products[:8], t, rng)[1].tolist() for i in range(people - k % 2)}
        recs[f"d{k}.jpg"] = {"size": {"width": synth.WIDTH, "height": synth.HEIGHT}, "ground_truth": [objects[t]],
                             "target": "t.png", "grid": [4, 2], "image": "shelf.png", "objects": objects,
                             "fixations": fix}
    path = folder / "displays.json"
    path.write_text(json.dumps(recs))
    return path


def _train(folder: str, out: Path) -> dict:
    from seqverse.vision.oat.displays import load_displays
    from seqverse.vision.oat.model import OATConfig
    from seqverse.vision.oat.train import train_oat

    displays = load_displays(Path(folder) / "displays.json")
    # 6 displays, 2 per batch: 3 steps, each batch's 2 displays split 1 + 1 over the ranks
    result = train_oat(displays, displays[:2], out, config=OATConfig(**TINY), epochs=1, displays_per_batch=2,
                       lr=1e-4, patience=None, seed=0, max_len=8, progress=False)
    assert result["steps"] == 3
    from safetensors.torch import load_file

    weights = load_file(str(out / "best" / "model.safetensors"))
    kept = []
    for k in sorted(weights):
        w = weights[k]
        if k == "head.readout.bias":  # added to every logit: softmax-invariant, true gradient 0
            continue
        if k.endswith("in_proj_bias"):  # the key bias shifts every score of a query alike: gradient 0
            d = w.shape[0] // 3
            w = torch.cat([w[:d], w[2 * d :]])
        kept.append(w.flatten())
    return {"losses": result["losses"], "weights": torch.cat(kept).tolist()}


def _worker(rank, size, init, folder, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    result = _train(folder, Path(folder) / f"r{rank}")
    finish_rank(rank, result, out)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    _write_displays(tmp_path)
    one = _train(str(tmp_path), tmp_path / "one")
    two = spawn_ranks(_worker, 2, str(tmp_path))
    assert len(two["losses"]) == len(one["losses"]) == 3
    dl = max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True))
    dw = max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True))
    print(f"oat 2 vs 1 process: losses {dl:.2g}, weights {dw:.2g}")
    assert dl < 1e-5
    assert dw < 1e-5
