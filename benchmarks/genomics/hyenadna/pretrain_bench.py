"""Pretrain HyenaDNA and a same-size Transformer on identical batches on the HS11286 80% split.

Both models see identical batches and steps (the same seed and schedule; batch i is drawn from rng([seed, i])
whether they run in lock step or, with --only, one after the other). Data: the chromosome of *K. pneumoniae* HS11286 (Debian kleborate-examples); training
part [0, 0.78), validation [0.78, 0.80) (inside the 80%, used only to watch the curves and to pick
the Markov order), held-out test [0.80, 1.0) scored by ``heldout_bench.py``. Resumable: run the
same command again and it continues from the last checkpoint.

    nice -n 5 .venv/bin/python benchmarks/genomics/hyenadna/pretrain_bench.py --out runs/hyenadna/pretrain --threads 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from seqverse.genomics.hyenadna.data import load_genome
from seqverse.genomics.hyenadna.model import HyenaDNAConfig
from seqverse.genomics.hyenadna.train import PretrainConfig, load_or_create, pretrain

GENOME = "/usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz"
TRAIN, VAL, TEST = (0.0, 0.78), (0.78, 0.80), (0.80, 1.0)


def model_configs(d_model=128, n_layer=2, seq_len=1024):
    """HyenaDNA tiny-1k layout, and a Transformer with the MLP widened to the same parameter count."""
    # emb_dim = seq_len + 1: positional features with every Fourier band up to Nyquist, so the implicit filters can
    # express the period-3 (codon) structure of bacterial DNA; with the official emb_dim = 5 (two bands: at most
    # one cycle over the context) they stay smooth, and a first run (runs/hyenadna/old) trailed the Transformer.
    hyena = HyenaDNAConfig(d_model=d_model, n_layer=n_layer, d_inner=4 * d_model, max_seq_len=seq_len, emb_dim=seq_len + 1,
                           embed_dropout=0.0)
    from seqverse.genomics.hyenadna.model import HyenaDNAForCausalLM

    target = HyenaDNAForCausalLM(hyena).num_parameters
    base = HyenaDNAConfig(**(hyena.to_dict() | {"mixer": "attention", "n_heads": 4}))
    base_params = HyenaDNAForCausalLM(base).num_parameters
    extra = round((target - base_params) / (n_layer * (2 * d_model + 1)))
    attention = HyenaDNAConfig(**(base.to_dict() | {"d_inner": 4 * d_model + extra}))
    return hyena, attention


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/hyenadna/pretrain")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--stop-step", type=int, default=None, help="stop at this step of the --steps schedule (the benchmark stopped at 760)")
    ap.add_argument("--only", choices=["hyena", "attention"], default=None,
                    help="train one of the two (batches depend only on seed and step, so separate runs see the same data)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    train = load_genome([GENOME], largest_only=True, fraction=TRAIN)
    val = load_genome([GENOME], largest_only=True, fraction=VAL)
    cfg = PretrainConfig(steps=args.steps, seq_len=1024, min_seq_len=256, tokens_per_step=4096, lr=1e-3, eval_every=250)
    hyena_cfg, attn_cfg = model_configs()
    models = {name: load_or_create(out / name, c) for name, c in (("hyena", hyena_cfg), ("attention", attn_cfg)) if args.only in (None, name)}
    print(json.dumps({m.config.mixer: m.num_parameters for m in models.values()}), flush=True)
    for name, model in models.items():  # one after the other: batch i depends only on seed and i
        pretrain(model, out / name, train, val, cfg, max_seconds=args.max_seconds, stop_step=args.stop_step)


if __name__ == "__main__":
    main()
