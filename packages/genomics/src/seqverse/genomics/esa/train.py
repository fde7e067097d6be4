"""Contrastive training of the DNA-ESA encoder (Holur et al. 2023, Sec. 3.2).

Each example is a (reference fragment, read) pair: the read is cut from inside the fragment and
given simulated sequencing errors (substitutions rising toward the 3' end as on Illumina,
insertions, deletions, the odd N), and the pair is put on either strand at random. The loss is
InfoNCE over cosine similarities with a temperature: each read must pick its own fragment among
every fragment of the batch (in-batch negatives) plus hard negatives, here the reverse complement
of each positive fragment (the wrong strand, which shares no k-mer order with the read) and a
fragment that overlaps the read only partly. Training is resumable: the state (model, optimiser,
step, random generator) is checkpointed every few minutes to ``OUT/checkpoint/``.
"""

from __future__ import annotations

import csv
import json
import time
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


def info_nce(model: DNAEncoder, frags, reads, negs, temperature: float) -> tuple[torch.Tensor, float]:
    """InfoNCE of reads against [positives; reverse-complement positives; partial-overlap negatives]."""
    q = model(_tokens(model, reads))
    keys = model(_tokens(model, frags + [reverse_complement(f) for f in frags] + negs))
    logits = q @ keys.T / temperature
    target = torch.arange(len(reads))
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(1) == target).float().mean().item()
    return loss, acc


def train(
    genome_paths: list[str],
    out_dir: str | Path,
    model_config: EncoderConfig | None = None,
    config: TrainConfig | None = None,
    threads: int = 1,
    progress: bool = True,
) -> dict:
    """Train (or resume) an encoder on ``genome_paths``; writes MODEL_DIR/{config.json,model.safetensors}.

    ``OUT/checkpoint/`` holds the resumable state, ``OUT/curve.csv`` the training curve.
    """
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    torch.set_num_threads(threads)
    out = Path(out_dir)
    ckpt = out / "checkpoint"
    config = config or TrainConfig()
    model_config = model_config or EncoderConfig()
    state_file = ckpt / "state.json"
    if state_file.is_file():  # resume
        state = json.loads(state_file.read_text())
        model_config = EncoderConfig(**state["model_config"])
        config = TrainConfig(**{**state["train_config"], "steps": config.steps})
        model = DNAEncoder(model_config)
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        step = state["step"]
        rng = np.random.default_rng([config.seed, step])
    else:
        torch.manual_seed(config.seed)
        model = DNAEncoder(model_config)
        step = 0
        rng = np.random.default_rng(config.seed)
    genomes: dict[str, str] = {}
    for p in genome_paths:
        genomes.update({f"{p}:{k}": v for k, v in read_fasta(p).items()})
    sampler = PairSampler(genomes, config, rng)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    if (ckpt / "optimizer.pt").is_file() and step:
        try:
            opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        except Exception as err:  # an optimiser state that will not load safely: restart the moments
            print(f"esa train: optimiser state not restored ({type(err).__name__}); continuing with fresh moments")

    def lr_at(s: int) -> float:  # linear warm-up over 100 steps, then cosine decay to 0 at config.steps
        return config.lr * min(1.0, (s + 1) / 100) * 0.5 * (1 + float(np.cos(np.pi * min(s, config.steps) / config.steps)))

    out.mkdir(parents=True, exist_ok=True)
    curve_path = out / "curve.csv"
    new_curve = not curve_path.is_file()
    curve = open(curve_path, "a", newline="")
    writer = csv.writer(curve)
    if new_curve:
        writer.writerow(["step", "loss", "batch_acc", "lr", "seconds"])

    def save_checkpoint():
        ckpt.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors"))
        torch.save(opt.state_dict(), ckpt / "optimizer.pt")
        state_file.write_text(
            json.dumps({"step": step, "model_config": asdict(model_config), "train_config": asdict(config)}, indent=2)
        )
        model.save_pretrained(out / "model")
        curve.flush()

    import signal

    _interrupted = False

    def _stop(signum, frame):  # finish the step, save, then stop (Ctrl-C or kill)
        nonlocal _interrupted
        _interrupted = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    model.train()
    last_save, t0 = time.time(), time.time()
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="esa train")
    loss_avg = None
    while step < config.steps:
        read_len = int(rng.integers(config.read_len_min, config.read_len_max + 1))
        frags, reads, negs = sampler.batch(read_len)
        loss, acc = info_nce(model, frags, reads, negs, config.temperature)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        writer.writerow([step, f"{loss.item():.4f}", f"{acc:.3f}", f"{lr_at(step - 1):.2e}", f"{time.time() - t0:.0f}"])
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.3f}", acc=f"{acc:.2f}")
        if time.time() - last_save > 60 * config.checkpoint_minutes:
            save_checkpoint()
            last_save = time.time()
        if _interrupted:
            break
    save_checkpoint()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    if _interrupted:
        raise KeyboardInterrupt
    bar.close()
    curve.close()
    return {"steps": step, "loss": loss_avg, "model_dir": str(out / "model")}
