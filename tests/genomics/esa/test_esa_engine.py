"""DNA-ESA encoder training through seqverse.core.train against the plain loop it had before.

The reference loop: the sampler's stream from one generator (read length, then the batch),
AdamW (weight decay 0.01), 100-step warm-up times cosine, clipping at 1.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig


def reference_losses(genome_paths, model_config, config, n_steps):
    from seqverse.genomics.esa.train import PairSampler, info_nce, lr_factor
    from seqverse.genomics.io import read_fasta

    torch.manual_seed(config.seed)
    model = DNAEncoder(model_config)
    genomes = {}
    for p in genome_paths:
        genomes.update({f"{p}:{k}": v for k, v in read_fasta(p).items()})
    rng = np.random.default_rng(config.seed)
    sampler = PairSampler(genomes, config, rng)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    model.train()
    losses = []
    for step in range(n_steps):
        read_len = int(rng.integers(config.read_len_min, config.read_len_max + 1))
        loss, _ = info_nce(model, *sampler.batch(read_len), temperature=config.temperature)
        for group in opt.param_groups:
            group["lr"] = config.lr * lr_factor(config, step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def test_training_reproduces_the_reference_loop(tmp_path):
    from seqverse.genomics.esa.train import TrainConfig, train

    rng = np.random.default_rng(4)
    genome = tmp_path / "g.fa"
    genome.write_text(">g\n" + "".join(rng.choice(list("ACGT"), 6000)) + "\n")
    cfg = EncoderConfig(k=4, pool=4, d_model=32, n_heads=2, d_out=32)
    tc = TrainConfig(steps=3, batch_size=6, fragment_len=120, read_len_min=60, read_len_max=80, lr=3e-3, sub_rate_max=0.15)
    expected = reference_losses([str(genome)], cfg, tc, 3)
    train([str(genome)], tmp_path / "run", cfg, tc, progress=False)
    got = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(got) == 3 and max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-6
    assert len((tmp_path / "run" / "curve.csv").read_text().splitlines()) == 4
