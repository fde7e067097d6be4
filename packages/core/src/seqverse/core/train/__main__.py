"""``python -m seqverse.core.train``: train the demo LM with the engine; under ``torchrun``, DP x SP.

torchrun --nproc-per-node 4 -m seqverse.core.train --sequence-parallel ring --steps 20 --out sp4.json
torchrun --nproc-per-node 4 -m seqverse.core.train --sequence-parallel ring --sp-size 2 --batch-size 2
python -m seqverse.core.train --steps 20 --out single.json          # the same run on one process
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, fields

import torch.distributed as dist

from seqverse.core.train.lm import LMConfig, markov_entropy, train_lm
from seqverse.core.train.mesh import init_distributed

HELP = {
    "sequence_parallel": "split each sequence over an SP group with this attention method",
    "sp_size": "ranks per sequence-parallel group (0: all processes when a method is set, else 1)",
    "steps": "optimizer steps (>= 1)",
    "seq_len": "tokens per sequence",
    "batch_size": "sequences per step (global; split over the data-parallel ranks)",
    "vocab_size": "Markov-chain vocabulary",
    "d_model": "model width",
    "n_layers": "transformer blocks",
    "n_heads": "query heads",
    "n_kv_heads": "key/value heads (GQA when fewer than n_heads)",
    "lr": "AdamW learning rate (constant)",
    "seed": "seed of the model init and of the data stream",
    "remat": "LightSeq rematerialization-aware checkpointing of every block",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqverse.core.train", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in fields(LMConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true", help=HELP[f.name])
        elif f.name == "sequence_parallel":
            parser.add_argument(flag, default="none", choices=("none", "ring", "lightseq", "ulysses"), help=HELP[f.name])
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            parser.add_argument(flag, type=kind, default=f.default, metavar=f.name.upper(), help=HELP[f.name])
    parser.add_argument("--out", help="write the config and the loss of every step to this JSON file")
    parser.add_argument("--out-dir", help="checkpoint (every 10 steps) and metrics.jsonl here; resumes from it")
    args = parser.parse_args(argv)
    config = LMConfig(**{f.name: getattr(args, f.name) for f in fields(LMConfig)})
    if config.steps < 1:
        print(f"error: --steps must be >= 1, got {config.steps}", file=sys.stderr)
        return 2

    device = init_distributed()
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1

    def log(step, loss):
        if rank == 0:
            print(f"step {step:4d}  loss {loss:.6f}", file=sys.stderr, flush=True)

    try:
        losses = train_lm(config, device=device, log=log, out_dir=args.out_dir).losses()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        result = {
            "config": asdict(config),
            "processes": world,
            "losses": losses,
            "chain_entropy": markov_entropy(config),
        }
        if args.out:
            tmp = args.out + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(result, fh, indent=2)
            os.chmod(tmp, 0o644)
            os.replace(tmp, args.out)
        print(json.dumps({"processes": world, "first_loss": losses[0], "last_loss": losses[-1]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
