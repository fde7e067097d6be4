"""HyenaDNA pre-training and fine-tuning through seqverse.core.train against plain reference loops.

The reference loops below are the hand-written loops the systems had before the engine (AdamW with
the decay/no-decay groups, the warm-up + cosine lr of ``PretrainConfig.lr_at``, clipping, batches
from ``rng([seed, step])``; fine-tuning: AdamW + OneCycleLR over shuffled batches): the engine must
reproduce their losses step by step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqverse.genomics.hyenadna.data import sample_batch
from seqverse.genomics.hyenadna.model import HyenaDNAConfig, HyenaDNAForCausalLM

UNIT = "AACCGGTTACGT"


def _genome(tmp_path):
    from seqverse.genomics.hyenadna.data import load_genome

    rng = np.random.default_rng(3)
    seq = "".join(UNIT[i % len(UNIT)] if rng.random() < 0.8 else "ACGT"[rng.integers(4)] for i in range(3000))
    (tmp_path / "g.fa").write_text(">g\n" + seq + "\n")
    return load_genome([tmp_path / "g.fa"])


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = HyenaDNAConfig(d_model=16, n_layer=1, d_inner=32, max_seq_len=32, emb_dim=5, embed_dropout=0.0)
    return HyenaDNAForCausalLM(cfg)


def reference_pretrain_losses(model, genome, cfg, n_steps):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "implicit_filter" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    losses = []
    for step in range(n_steps):
        length = cfg.seq_len_at(step)
        inputs, labels = sample_batch(genome, max(1, cfg.tokens_per_step // length), length,
                                      np.random.default_rng([cfg.seed, step]), cfg.reverse_complement)
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(step)
        model.train()
        loss = model.loss(inputs, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
    return losses


def test_pretraining_reproduces_the_reference_loop(tmp_path):
    from seqverse.genomics.hyenadna.train import PretrainConfig, pretrain

    genome = _genome(tmp_path)
    cfg = PretrainConfig(steps=40, seq_len=32, min_seq_len=8, tokens_per_step=128, lr=1e-2, lr_warmup_steps=2, seed=1)
    expected = reference_pretrain_losses(tiny_model(), genome, cfg, 6)
    model = tiny_model()
    result = pretrain(model, None, genome, None, cfg, progress=False, stop_step=6)
    assert [h["seq_len"] for h in result.history] == [cfg.seq_len_at(s) for s in range(6)] == [8, 8, 16, 16, 32, 32]
    assert max(abs(a - b) for a, b in zip(result.losses(), expected, strict=True)) < 1e-6
    assert expected[-1] < expected[0]


def _task(n_train=21, n_test=6):
    from seqverse.genomics.hyenadna.tasks import Split, Task

    rng = np.random.default_rng(0)

    def split(n, offset):
        seqs = ["".join(rng.choice(list("ATTA" if (i + offset) % 2 else "GCCG"), 20)) for i in range(n)]
        return Split([f"r{i + offset}" for i in range(n)], seqs, [(i + offset) % 2 for i in range(n)])

    return Task("gc", "sequence", ["gc", "at"], split(n_train, 0), split(n_test, 1000))


def reference_finetune_losses(model_dir, task, epochs, batch_size, lr, seed, rc_augment, weight_decay=0.01):
    """The loop fine-tuning had before the engine (with each epoch's order from rng([seed, epoch]))."""
    from seqverse.genomics.hyenadna.finetune import _batches, _encode, from_pretrained_backbone
    from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer
    from seqverse.genomics.io import reverse_complement

    torch.manual_seed(seed)
    model = from_pretrained_backbone(model_dir, task.kind, len(task.label_names), "mean")
    tok = CharacterTokenizer()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(task.train.sequences)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((n + batch_size - 1) // batch_size), pct_start=0.1)
    losses = []
    for epoch in range(epochs):
        model.train()
        rng = np.random.default_rng([seed, epoch])
        for idx in _batches(n, batch_size, rng):
            seqs = [task.train.sequences[i] for i in idx]
            if rc_augment:
                seqs = [reverse_complement(s) if flip else s for s, flip in zip(seqs, rng.random(len(seqs)) < 0.5)]
            logits = model(_encode(tok, seqs, [task.train.ids[i] for i in idx]))
            loss = F.cross_entropy(logits, torch.as_tensor([task.train.labels[i] for i in idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pretrained")
    model = tiny_model()
    model.config.embed_dropout = 0.1  # dropout on: the RNG stream must match too
    model.save_pretrained(d)
    return d


def test_finetuning_reproduces_the_reference_loop(pretrained_dir):
    from seqverse.genomics.hyenadna.finetune import finetune

    task = _task()
    expected = reference_finetune_losses(pretrained_dir, task, 2, 4, 3e-3, 5, True)
    result = finetune(pretrained_dir, task, epochs=2, batch_size=4, lr=3e-3, seed=5, progress=False, rc_augment=True,
                      val=task.test, keep_best=True)
    got = [h["train_loss"] for h in result["history"]]
    assert [np.mean(expected[:6]), np.mean(expected[6:])] == pytest.approx(got, abs=1e-6)
    assert result["kept_epoch"] in (1, 2) and "val_accuracy_both_strands" in result["history"][0]
