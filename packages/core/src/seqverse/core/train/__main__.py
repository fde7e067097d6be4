"""``python -m seqverse.core.train``: train the small LM; under ``torchrun`` with sequence parallelism.

torchrun --nproc-per-node 4 -m seqverse.core.train --sequence-parallel ring --steps 20 --out sp4.json
python -m seqverse.core.train --steps 20 --out single.json          # the same run on one process
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, fields

import torch
import torch.distributed as dist

from seqverse.core.train import TrainConfig, markov_entropy, train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqverse.core.train", description=__doc__.splitlines()[0]
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true")
        elif f.name == "sequence_parallel":
            parser.add_argument(flag, default="none", choices=("none", "ring", "lightseq", "ulysses"))
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            parser.add_argument(flag, type=kind, default=f.default, metavar=f.name.upper())
    parser.add_argument("--out", help="write the config and the loss of every step to this JSON file")
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun
        if device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1

    def log(step, loss):
        if rank == 0:
            print(f"step {step:4d}  loss {loss:.6f}", file=sys.stderr, flush=True)

    try:
        losses = train(config, device=device, log=log)
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
            os.replace(tmp, args.out)
        print(json.dumps({"processes": world, "first_loss": losses[0], "last_loss": losses[-1]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
