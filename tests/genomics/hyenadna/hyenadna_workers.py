"""Workers for the HyenaDNA distributed tests: tiny pre-training / fine-tuning runs on P gloo processes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, gather_by_key, spawn_ranks

UNIT = "AACCGGTTACGT"


def genome(tmp: Path):
    from seqverse.genomics.hyenadna.data import load_genome

    rng = np.random.default_rng(3)
    seq = "".join(UNIT[i % len(UNIT)] if rng.random() < 0.8 else "ACGT"[rng.integers(4)] for i in range(3000))
    (tmp / "g.fa").write_text(">g\n" + seq + "\n")
    return load_genome([tmp / "g.fa"])


def tiny_model():
    from seqverse.genomics.hyenadna.model import HyenaDNAConfig, HyenaDNAForCausalLM

    torch.manual_seed(0)
    return HyenaDNAForCausalLM(HyenaDNAConfig(d_model=16, n_layer=2, d_inner=32, max_seq_len=32, emb_dim=5, embed_dropout=0.0))


def pretrain_case(sp_size: int) -> dict:
    """4 steps of pre-training (lengths 8, 16, 32, 32) on a mesh of ``sp_size``-rank SP groups."""
    from seqverse.core.train import make_mesh
    from seqverse.genomics.hyenadna.train import PretrainConfig, pretrain

    tmp = Path(tempfile.mkdtemp())
    cfg = PretrainConfig(steps=20, seq_len=32, min_seq_len=8, tokens_per_step=128, lr=1e-2, lr_warmup_steps=2, seed=1,
                         warmup_fraction=0.1)
    model = tiny_model()
    result = pretrain(model, None, genome(tmp), None, cfg, progress=False, stop_step=4, mesh=make_mesh(sp_size))
    return {"losses": result.losses(), "seq_len": [h["seq_len"] for h in result.history],
            "weights": torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()}


def finetune_case() -> dict:
    """Two epochs of fine-tuning a sequence classifier (no dropout), data parallel."""
    from seqverse.genomics.hyenadna.finetune import finetune
    from seqverse.genomics.hyenadna.tasks import Split, Task

    tmp = Path(tempfile.mkdtemp())
    tiny_model().save_pretrained(tmp / "pre")
    rng = np.random.default_rng(0)

    def split(n, offset):
        seqs = ["".join(rng.choice(list("ATTA" if (i + offset) % 2 else "GCCG"), 20)) for i in range(n)]
        return Split([f"r{i + offset}" for i in range(n)], seqs, [(i + offset) % 2 for i in range(n)])

    task = Task("gc", "sequence", ["gc", "at"], split(13, 0), split(4, 100))
    result = finetune(tmp / "pre", task, epochs=2, batch_size=4, lr=3e-3, seed=5, progress=False, out=tmp / "ft")
    return {"train_loss": [h["train_loss"] for h in result["history"]], "final": result["final_train_loss"]}


CASES = {"pretrain_dp": lambda: pretrain_case(1), "pretrain_sp": lambda: pretrain_case(2), "finetune_dp": finetune_case}


def run(names: list[str], size: int, timeout: float = 300) -> dict:
    """``names`` on ``size`` gloo processes (in this process, without a process group, when size is 1)."""
    torch.set_num_threads(1)
    if size == 1:
        return {n: [CASES[n]()] for n in names}
    return spawn_ranks(_worker, size, names, timeout=timeout)


def _worker(rank, size, init, names, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    results = {n: CASES[n]() for n in names}
    finish_rank(rank, gather_by_key(results), out)
