"""Contrastive training of the DNA-ESA encoder (Holur et al. 2023, Sec. 3.2).

Each example is a (reference fragment, read) pair: the read is cut from inside the fragment and
given simulated sequencing errors (substitutions rising toward the 3' end as on Illumina,
insertions, deletions, the odd N), and the pair is put on either strand at random. The loss is
InfoNCE over cosine similarities with a temperature: each read must pick its own fragment among
every fragment of the batch (in-batch negatives) plus hard negatives, here the reverse complement
of each positive fragment (the wrong strand, which shares no k-mer order with the read) and a
fragment that overlaps the read only partly. Training runs through the shared engine
(:func:`seqverse.core.train.fit`) and is resumable: model, optimiser, step and data position are
checkpointed every few minutes to ``OUT/checkpoint/``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig, encode_bases, kmer_tokens
from seqverse.genomics.io import read_fasta, reverse_complement


@dataclass
class TrainConfig:
    fragment_len: int = 500
    read_len_min: int = 100
    read_len_max: int = 250
    batch_size: int = 64
    steps: int = 3000
    lr: float = 1e-3
    temperature: float = 0.05
    sub_rate_max: float = 0.03  # per-read substitution rate drawn from U(0, max)
    indel_rate: float = 0.001
    n_rate: float = 0.001
    seed: int = 0
    checkpoint_minutes: float = 3.0
    eval_every: int = 200


def mutate(read: str, rng: np.random.Generator, sub_rate: float, indel_rate: float, n_rate: float) -> str:
    """Simulated sequencing errors: substitutions (rate rising 0.5x -> 1.5x along the read), indels, Ns."""
    n = len(read)
    ramp = sub_rate * (0.5 + np.arange(n) / max(n - 1, 1))
    out = []
    for i, base in enumerate(read):
        u = rng.random()
        if u < indel_rate:  # deletion
            continue
        if u < 2 * indel_rate:  # insertion before the base
            out.append("ACGT"[rng.integers(4)])
        if rng.random() < ramp[i]:
            base = "ACGT".replace(base, "")[rng.integers(3)] if base in "ACGT" else base
        if rng.random() < n_rate:
            base = "N"
        out.append(base)
    return "".join(out)


class PairSampler:
    """Random (fragment, read, hard negative) triples from a set of genomes."""

    def __init__(self, genomes: dict[str, str], config: TrainConfig, rng: np.random.Generator):
        self.seqs = [s for s in genomes.values() if len(s) >= 3 * config.fragment_len]
        self.weights = np.array([len(s) for s in self.seqs], dtype=np.float64)
        self.weights /= self.weights.sum()
        self.config, self.rng = config, rng

    def batch(self, read_len: int) -> tuple[list[str], list[str], list[str]]:
        c, rng = self.config, self.rng
        frags, reads, negs = [], [], []
        for _ in range(c.batch_size):
            seq = self.seqs[rng.choice(len(self.seqs), p=self.weights)]
            start = int(rng.integers(0, len(seq) - 2 * c.fragment_len))
            frag = seq[start : start + c.fragment_len]
            off = int(rng.integers(0, c.fragment_len - read_len + 1))
            read = frag[off : off + read_len]
            # partly overlapping neighbour: shares < half of the read
            shift = c.fragment_len - off - read_len // 2 + int(rng.integers(1, read_len // 2))
            neg = seq[start + shift : start + shift + c.fragment_len]
            if rng.random() < 0.5:  # the other strand
                frag, read, neg = reverse_complement(frag), reverse_complement(read), reverse_complement(neg)
            sub = float(rng.uniform(0, c.sub_rate_max))
            reads.append(mutate(read, rng, sub, c.indel_rate, c.n_rate))
            frags.append(frag)
            negs.append(neg)
        # equal lengths within a batch (the encoder takes one length per batch)
        m = min(len(r) for r in reads)
        reads = [r[:m] for r in reads]
        return frags, reads, negs


def _tokens(model: DNAEncoder, seqs: list[str]) -> torch.Tensor:
    return torch.from_numpy(kmer_tokens(encode_bases(seqs), model.config.k))


def info_nce(model: DNAEncoder, frags, reads, negs, temperature: float, gather=None) -> tuple[torch.Tensor, float]:
    """InfoNCE of reads against [positives; reverse-complement positives; partial-overlap negatives].

    ``gather`` (:func:`seqverse.core.train.gather_rows` under data parallelism): each key block
    gathered from every rank, so a read's negatives are the whole global batch, as on one process."""
    q = model(_tokens(model, reads))
    keys = model(_tokens(model, frags + [reverse_complement(f) for f in frags] + negs))
    offset = 0
    if gather is not None:
        blocks = [gather(block) for block in keys.split(len(frags))]
        keys, offset = torch.cat([b for b, _ in blocks]), blocks[0][1]
    logits = q @ keys.T / temperature
    target = torch.arange(len(reads)) + offset
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(1) == target).float().mean().item()
    return loss, acc


class TrainPairs:
    """The endless stream of training batches: ``(fragments, reads, negatives)`` with a read length
    drawn per batch, all from one generator seeded with ``config.seed`` (the engine replays the
    stream up to the checkpointed position on resume, so a resumed run sees the same batches)."""

    def __init__(self, genomes: dict[str, str], config: TrainConfig):
        self.genomes, self.config = genomes, config

    def __iter__(self):
        c = self.config
        rng = np.random.default_rng(c.seed)
        sampler = PairSampler(self.genomes, c, rng)
        while True:
            read_len = int(rng.integers(c.read_len_min, c.read_len_max + 1))
            yield sampler.batch(read_len)


def lr_factor(config: TrainConfig, step: int) -> float:
    """Linear warm-up over 100 steps, times a cosine decay to 0 at ``config.steps``."""
    return min(1.0, (step + 1) / 100) * 0.5 * (1 + float(np.cos(np.pi * min(step, config.steps) / config.steps)))


def train(
    genome_paths: list[str],
    out_dir: str | Path,
    model_config: EncoderConfig | None = None,
    config: TrainConfig | None = None,
    threads: int = 1,
    progress: bool = True,
) -> dict:
    """Train (or resume) an encoder on ``genome_paths`` with :func:`seqverse.core.train.fit`;
    writes ``OUT/model/{config.json,model.safetensors}``.

    ``OUT/checkpoint/`` holds the engine's resumable state (``OUT/run.json`` the configs it was
    started with), ``OUT/curve.csv`` the training curve. SIGINT/SIGTERM finish the step, save, and
    raise ``KeyboardInterrupt``.
    """
    from seqverse.core.train import TrainConfig as EngineConfig
    from seqverse.core.train import fit, gather_rows

    torch.set_num_threads(threads)
    out = Path(out_dir)
    config = config or TrainConfig()
    model_config = model_config or EncoderConfig()
    run_file = out / "run.json"
    if run_file.is_file() and (out / "checkpoint").is_dir():  # resume: the run's own configs
        run = json.loads(run_file.read_text())
        model_config = EncoderConfig(**run["model_config"])
        config = TrainConfig(**{**run["train_config"], "steps": config.steps})
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps({"model_config": asdict(model_config), "train_config": asdict(config)}, indent=2))
    torch.manual_seed(config.seed)
    model = DNAEncoder(model_config)
    genomes: dict[str, str] = {}
    for p in genome_paths:
        genomes.update({f"{p}:{k}": v for k, v in read_fasta(p).items()})

    def loss_fn(m, batch):
        loss, acc = info_nce(m, *batch, config.temperature, gather=gather_rows)
        return loss, {"batch_acc": acc}

    engine = EngineConfig(steps=config.steps, lr=config.lr, weight_decay=0.01, clip_norm=1.0, seed=None, out_dir=str(out),
                          checkpoint_seconds=60 * config.checkpoint_minutes, progress=progress, progress_desc="esa train")
    result = fit(model, TrainPairs(genomes, config), loss_fn, engine, schedule=lambda s: lr_factor(config, s))
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:  # torchrun: rank 0 writes
        return {"steps": result.steps_done, "loss": None, "model_dir": str(out / "model")}
    model.save_pretrained(out / "model")
    rows = [["step", "loss", "batch_acc", "lr", "seconds"]]
    rows += [[h["step"], f"{h['loss']:.4f}", f"{h['batch_acc']:.3f}", f"{h['lr']:.2e}", f"{h['seconds']:.0f}"] for h in result.history]
    tmp = out / "curve.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    tmp.replace(out / "curve.csv")
    if result.interrupted:
        raise KeyboardInterrupt
    losses = result.losses()
    loss_avg = None
    for x in losses:  # the smoothed loss the progress bar showed
        loss_avg = x if loss_avg is None else 0.98 * loss_avg + 0.02 * x
    return {"steps": result.steps_done, "loss": loss_avg, "model_dir": str(out / "model")}
