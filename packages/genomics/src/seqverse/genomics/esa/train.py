"""Contrastive training of the DNA-ESA encoder (Holur et al. 2023, Sec. 3.2).

Each example is a (reference fragment, read) pair: the read is cut from inside the fragment and
given simulated sequencing errors (substitutions rising toward the 3' end as on Illumina,
insertions, deletions, the odd N), and the pair is put on either strand at random. The loss is
InfoNCE over cosine similarities with a temperature: each read must pick its own fragment among
every fragment of the batch (in-batch negatives) plus hard negatives: the reverse complement of
each positive fragment (the wrong strand) and the two fragments next to the positive on the
index's grid (``stride`` apart) that do not hold the read whole (the positive is the grid fragment
holding the read most centrally): they share up to all but one of
its bases, and are what a top-1 search confuses the source fragment with (``stride 0``: the older
single negative overlapping less than half of the read). With ``val_genome`` the encoder is
scored every ``eval_every`` steps by recall@1 on that genome (its own grid of fragments, reads
sampled with the same error model), and the best-scoring weights are kept. Training runs through the shared engine
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

from seqverse.core.clikit import InputError
from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig, encode_bases, kmer_tokens
from seqverse.genomics.io import read_fasta, reverse_complement


@dataclass
class TrainConfig:
    fragment_len: int = 400  # as `esa index` cuts them
    stride: int = 150  # the index grid the neighbour negatives come from (0: one partial-overlap negative)
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
    pool_lr_scale: float = 10.0  # the pooling profile's learning rate, times lr (a few knots, no decay)
    val_genome: str | None = None  # FASTA scored by recall@1 every eval_every steps; the best weights kept
    val_reads: int = 2000


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

    @staticmethod
    def min_length(config: TrainConfig) -> int:
        """Shortest record a batch can be cut from (room for the grid neighbours on either side)."""
        return max(3 * config.fragment_len, 2 * PairSampler.margin_of(config) + config.fragment_len + 1)

    @staticmethod
    def margin_of(config: TrainConfig) -> int:
        # room for moving the positive along the grid and for its neighbours on either side
        f, stride = config.fragment_len, config.stride
        return 2 * (f + stride * (f // stride + 1)) if stride > 0 else 0

    def __init__(self, genomes: dict[str, str], config: TrainConfig, rng: np.random.Generator):
        f = config.fragment_len
        self.margin = self.margin_of(config)
        self.seqs = [s for s in genomes.values() if len(s) >= self.min_length(config)]
        if not self.seqs:
            raise ValueError(f"no sequence is long enough to cut {f}-base fragments and their neighbours from")
        self.weights = np.array([len(s) for s in self.seqs], dtype=np.float64)
        self.weights /= self.weights.sum()
        self.config, self.rng = config, rng

    def batch(self, read_len: int) -> tuple[list[str], ...]:
        """``(fragments, reads, *negatives)``, one string per read in each: with ``stride > 0`` two
        blocks of negatives (every read's left, then right grid neighbour), else one."""
        if self.config.stride > 0:
            return self._grid_batch(read_len)
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


    def _grid_batch(self, read_len: int) -> tuple[list[str], list[str], list[str]]:
        c, rng = self.config, self.rng
        f, stride = c.fragment_len, c.stride
        frags, reads, lefts, rights = [], [], [], []
        for _ in range(c.batch_size):
            seq = self.seqs[rng.choice(len(self.seqs), p=self.weights)]
            start = int(rng.integers(self.margin, len(seq) - self.margin - f))
            off = int(rng.integers(0, f - read_len + 1))
            # the positive: of the grid fragments holding the read whole (any of them is a hit), the
            # one holding it most centrally, as the index would best return it
            lo, hi = -((f - off - read_len) // stride), off // stride
            j = min(range(lo, hi + 1), key=lambda j: abs(off - j * stride + read_len / 2 - f / 2))
            start, off = start + j * stride, off - j * stride
            # nearest grid fragments that miss at least one base of the read: the first starting
            # after the read's start, the last ending before the read's end
            right = start + (off // stride + 1) * stride
            left = start - ((f - off - read_len) // stride + 1) * stride
            frag, read = seq[start : start + f], seq[start + off : start + off + read_len]
            nl, nr = seq[left : left + f], seq[right : right + f]
            if rng.random() < 0.5:  # the other strand
                frag, read, nl, nr = (reverse_complement(x) for x in (frag, read, nl, nr))
            sub = float(rng.uniform(0, c.sub_rate_max))
            reads.append(mutate(read, rng, sub, c.indel_rate, c.n_rate))
            frags.append(frag)
            lefts.append(nl)
            rights.append(nr)
        m = min(len(r) for r in reads)
        return frags, [r[:m] for r in reads], lefts, rights


class RecallProbe:
    """recall@1 per strand on a validation genome, as ``evaluate.retrieval_recall`` counts it: the
    genome cut on the index's grid (both strands), reads of ``read_len_max`` bases at random places
    with the training error model (seeded, fixed), top-1 by exact inner product, a hit when that
    vector is a fragment on the read's strand holding the read's span (5 bases of slack)."""

    def __init__(self, fasta: str, config: TrainConfig, seed: int = 12345):
        from seqverse.genomics.esa.index import fragment_starts

        c = config
        rng = np.random.default_rng(seed)
        self.frags, self.starts, self.contig = [], [], []
        contigs = [s for s in read_fasta(fasta).values() if len(s) >= self.min_length(config)]
        for ci, seq in enumerate(contigs):
            for s in fragment_starts(len(seq), c.fragment_len, c.stride or c.fragment_len // 2):
                self.frags.append(seq[s : s + c.fragment_len])
                self.starts.append(s)
                self.contig.append(ci)
        self.starts, self.contig = np.array(self.starts), np.array(self.contig)
        lengths = np.array([len(s) for s in contigs], dtype=np.float64)
        self.reads, self.truth = [], []  # truth: (contig, reverse, start, length)
        n = c.read_len_max
        for _ in range(config.val_reads):
            ci = int(rng.choice(len(contigs), p=lengths / lengths.sum()))
            start = int(rng.integers(0, len(contigs[ci]) - n + 1))
            read, rev = contigs[ci][start : start + n], bool(rng.random() < 0.5)
            if rev:
                read = reverse_complement(read)
            self.reads.append(mutate(read, rng, float(rng.uniform(0, c.sub_rate_max)), c.indel_rate, c.n_rate))
            self.truth.append((ci, rev, start, n))

    @staticmethod
    def min_length(config: TrainConfig) -> int:
        """Records shorter than this (one fragment, one read) are left out of the validation genome."""
        return max(config.fragment_len, config.read_len_max)

    def __call__(self, model: DNAEncoder) -> dict:
        was_training = model.training
        model.eval()
        fwd = model.embed_sequences(self.frags)
        rev = model.embed_sequences([reverse_complement(f) for f in self.frags])
        keys = np.empty((2 * len(self.frags), fwd.shape[1]), np.float32)
        keys[0::2], keys[1::2] = fwd, rev
        q = model.embed_sequences(self.reads)
        top = np.concatenate([(q[i : i + 512] @ keys.T).argmax(1) for i in range(0, len(q), 512)])
        model.train(was_training)
        hits, count = np.zeros(2), np.zeros(2)
        flen = len(self.frags[0])
        for v, (ci, strand, start, n) in zip(top.tolist(), self.truth):
            f = v >> 1
            fs = int(self.starts[f])
            ok = self.contig[f] == ci and bool(v & 1) == strand and fs <= start and start + n <= fs + flen + 5
            hits[int(strand)] += ok
            count[int(strand)] += 1
        fwd_r, rev_r = hits / np.maximum(count, 1)
        return {"val_recall@1": float(hits.sum() / count.sum()), "val_recall@1_fwd": float(fwd_r),
                "val_recall@1_rev": float(rev_r)}


def _tokens(model: DNAEncoder, seqs: list[str]) -> torch.Tensor:
    return torch.from_numpy(kmer_tokens(encode_bases(seqs), model.config.k))


def info_nce(model: DNAEncoder, frags, reads, *negs, temperature: float, gather=None) -> tuple[torch.Tensor, float]:
    """InfoNCE of reads against [positives; reverse-complement positives; each block of ``negs``]
    (every block one fragment per read: the grid neighbours, or the older partial-overlap one).

    ``gather`` (:func:`seqverse.core.train.gather_rows` under data parallelism): each key block
    gathered from every rank, so a read's negatives are the whole global batch, as on one process."""
    q = model(_tokens(model, reads))
    keys = model(_tokens(model, frags + [reverse_complement(f) for f in frags] + [x for block in negs for x in block]))
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
    if config.fragment_len < config.read_len_max:
        raise InputError(f"fragment length {config.fragment_len} is shorter than the longest training read "
                         f"({config.read_len_max} bases): reads are cut from inside fragments")
    genomes: dict[str, str] = {}
    for p in genome_paths:
        genomes.update({f"{p}:{k}": v for k, v in read_fasta(p).items()})
    need = PairSampler.min_length(config)
    if not any(len(s) >= need for s in genomes.values()):  # checked before anything is written
        raise InputError(f"{', '.join(map(str, genome_paths))}: no record of at least {need} bases, which training cuts "
                         f"{config.fragment_len}-base fragments and their grid neighbours from")
    if config.val_genome and not any(len(s) >= RecallProbe.min_length(config) for s in read_fasta(config.val_genome).values()):
        raise InputError(f"{config.val_genome}: the validation genome needs a record of at least "
                         f"{RecallProbe.min_length(config)} bases")
    probe = RecallProbe(config.val_genome, config) if config.val_genome else None
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps({"model_config": asdict(model_config), "train_config": asdict(config)}, indent=2))
    torch.manual_seed(config.seed)
    model = DNAEncoder(model_config)

    def loss_fn(m, batch):
        loss, acc = info_nce(m, *batch, temperature=config.temperature, gather=gather_rows)
        return loss, {"batch_acc": acc}

    engine = EngineConfig(steps=config.steps, lr=config.lr, weight_decay=0.01, clip_norm=1.0, seed=None, out_dir=str(out),
                          checkpoint_seconds=60 * config.checkpoint_minutes, progress=progress, progress_desc="esa train",
                          eval_every=config.eval_every if probe else 0, monitor="val_recall@1" if probe else None,
                          monitor_mode="max", restore_best=probe is not None)

    def optimizer(m):  # the pooling profile: a higher rate and no weight decay (decay would flatten it)
        profile = [p for n, p in m.named_parameters() if n == "pool_logits"]
        rest = [p for n, p in m.named_parameters() if n != "pool_logits"]
        groups = [{"params": rest, "lr": config.lr, "weight_decay": 0.01}]
        if profile:
            groups.append({"params": profile, "lr": config.lr * config.pool_lr_scale, "weight_decay": 0.0})
        return torch.optim.AdamW(groups)

    result = fit(model, TrainPairs(genomes, config), loss_fn, engine, eval_fn=probe, optimizer=optimizer,
                 schedule=lambda s: lr_factor(config, s))
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:  # torchrun: rank 0 writes
        return {"steps": result.steps_done, "loss": None, "model_dir": str(out / "model")}
    model.save_pretrained(out / "model")
    rows = [["step", "loss", "batch_acc", "lr", "seconds", "val_recall@1"]]
    rows += [[h["step"], f"{h['loss']:.4f}", f"{h['batch_acc']:.3f}", f"{h['lr']:.2e}", f"{h['seconds']:.0f}",
              f"{h['val_recall@1']:.4f}" if "val_recall@1" in h else ""] for h in result.history]
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
    out_info = {"steps": result.steps_done, "loss": loss_avg, "model_dir": str(out / "model")}
    if probe is not None:
        out_info.update({"best_val_recall@1": result.best_metric, "best_step": result.best_step})
    return out_info
