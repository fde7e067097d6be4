"""Source-model training (resumable) and voice adaptation (Sec. 2.3: fine-tune CLN + E^s only).

Adaptation modes compared by the benchmark:
  ``adaspeech``  W^gamma, W^beta of every decoder CLN and the speaker embedding (the paper);
  ``speaker``    the speaker embedding only;
  ``decoder``    the whole mel decoder, its output layer and the speaker embedding;
  ``nocln``      CLN frozen into plain layer norms whose scale and bias are fine-tuned
                 (the paper's "w/o CLN" ablation) plus the speaker embedding.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqverse.core.clikit import InputError
from seqverse.speech.adaspeech import text as T
from seqverse.speech.adaspeech.corpus import load_corpus
from seqverse.speech.adaspeech.model import (
    AdaSpeech,
    AdaSpeechConfig,
    ConditionalLayerNorm,
    FrozenScaleLayerNorm,
    losses,
)

LOSS_WEIGHTS = {"mel": 1.0, "duration": 1.0, "pitch": 0.5, "energy": 0.5, "phoneme": 0.5}


# ------------------------------------------------------------------------------ data
def load_items(corpus_dir, utts: list[dict]) -> list[dict]:
    """Feature tensors for utterances of a corpus written by ``corpus.build_corpus``."""
    items = []
    for u in utts:
        f = np.load(Path(corpus_dir) / "features" / f"{u['id']}.npz")
        items.append({"id": u["id"], "speaker": u["speaker"], "text": u["text"],
                      "phonemes": torch.tensor(T.phoneme_ids(u["phones"])),
                      "durations": torch.from_numpy(f["durations"]), "pitch": torch.from_numpy(f["pitch"]),
                      "energy": torch.from_numpy(f["energy"]), "mel": torch.from_numpy(f["mel"][: int(f["durations"].sum())])})
    return items


def collate(items: list[dict], speaker_index: dict[str, int] | None = None) -> dict:
    from torch.nn.utils.rnn import pad_sequence

    batch = {k: pad_sequence([it[k] for it in items], batch_first=True)
             for k in ("phonemes", "durations", "pitch", "energy", "mel")}
    batch["phoneme_lengths"] = torch.tensor([len(it["phonemes"]) for it in items])
    batch["mel_lengths"] = torch.tensor([len(it["mel"]) for it in items])
    if speaker_index is not None:
        batch["speaker_ids"] = torch.tensor([speaker_index[it["speaker"]] for it in items])
    return batch


def batches(items: list[dict], max_frames: int, rng: random.Random) -> list[list[dict]]:
    """Length-sorted buckets of at most ``max_frames`` padded frames, in random order."""
    order = sorted(items, key=lambda it: len(it["mel"]))
    out, cur = [], []
    for it in order:
        if cur and len(it["mel"]) * (len(cur) + 1) > max_frames:
            out.append(cur)
            cur = []
        cur.append(it)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def step_loss(model: AdaSpeech, batch: dict, speaker: torch.Tensor, utterance=None) -> tuple[torch.Tensor, dict]:
    out = model(batch["phonemes"], batch["phoneme_lengths"], speaker, ref_mel=batch["mel"], ref_lengths=batch["mel_lengths"],
                utterance=utterance, durations=batch["durations"], pitch=batch["pitch"], energy=batch["energy"], mel=batch["mel"])
    parts = losses(out, model.normalise_mel(batch["mel"]), batch["durations"], batch["pitch"], batch["energy"])
    total = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
    if not torch.isfinite(total):
        bad = [k for k, v in parts.items() if not torch.isfinite(v)]
        raise FloatingPointError(f"non-finite loss ({', '.join(bad)}) on utterances {batch.get('ids')}")
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ------------------------------------------------------------------------------ training
def source_step(model: AdaSpeech, opt, batch: dict, lr: float) -> tuple[torch.Tensor, dict]:
    """One optimiser step of source-model training at learning rate ``lr`` (gradients clipped to 1)."""
    for g in opt.param_groups:
        g["lr"] = lr
    total, parts = step_loss(model, batch, model.speaker_vectors(batch["speaker_ids"]))
    opt.zero_grad()
    total.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return total, parts


def train(corpus_dir, out_dir, steps: int = 6000, max_frames: int = 6000, lr: float = 1e-3, seed: int = 0,
          checkpoint_every: int = 250, config_overrides: dict | None = None, progress: bool = True) -> dict:
    """Train (or resume) the multi-speaker source model on the corpus's source speakers."""
    from safetensors.torch import load_file
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utts, summary = load_corpus(corpus_dir)
    source = [u for u in utts if u["role"] == "source"]
    speakers = sorted({u["speaker"] for u in source})
    rng = random.Random(seed)
    torch.manual_seed(seed)
    held = set(rng.sample([u["id"] for u in source], max(1, len(source) // 50)))
    items = load_items(corpus_dir, source)
    train_items = [it for it in items if it["id"] not in held]
    val_items = [it for it in items if it["id"] in held]
    mels = torch.cat([it["mel"] for it in train_items])
    cfg = AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=speakers, mel_mean=mels.mean(0).tolist(),
                          mel_std=(mels.std(0) + 1e-3).tolist(), stats=summary["stats"], **(config_overrides or {}))
    model = AdaSpeech(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    step = 0
    ckpt = out / "checkpoint"
    if (ckpt / "model.safetensors").is_file():  # resume
        state = json.loads((ckpt / "state.json").read_text())
        model = AdaSpeech(AdaSpeechConfig(**json.loads((ckpt / "config.json").read_text())))
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        step = state["step"]
        rng.setstate(tuple(state["rng"][:1]) + (tuple(state["rng"][1]),) + tuple(state["rng"][2:]))
    index = {s: i for i, s in enumerate(model.config.speakers)}
    warmup = 400

    def lr_at(s):
        return lr * min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))

    log = open(out / "train_log.jsonl", "a")
    bar = tqdm(total=steps, initial=step, desc="train", disable=not progress)
    queue: list = []
    model.train()
    t0 = time.time()
    while step < steps:
        if not queue:
            queue = batches(train_items, max_frames, rng)
        total, parts = source_step(model, opt, collate(queue.pop(), index), lr_at(step))
        step += 1
        bar.update(1)
        bar.set_postfix(mel=f"{parts['mel']:.3f}", dur=f"{parts['duration']:.3f}")
        if step % 25 == 0:
            log.write(json.dumps({"step": step, "loss": float(total), **parts, "lr": lr_at(step), "time": time.time() - t0}) + "\n")
            log.flush()
        if step % checkpoint_every == 0 or step == steps:
            val = evaluate_loss(model, val_items, index)
            log.write(json.dumps({"step": step, "val": val}) + "\n")
            log.flush()
            save_checkpoint(model, opt, step, rng, ckpt)
            model.save_pretrained(out / "model")
            plot_curves(out)
            model.train()
    bar.close()
    return {"step": step, "val": evaluate_loss(model, val_items, index), "out": str(out / "model")}


@torch.no_grad()
def evaluate_loss(model: AdaSpeech, items: list[dict], index: dict) -> dict:
    model.eval()
    batch = collate(items, index)
    _, parts = step_loss(model, batch, model.speaker_vectors(batch["speaker_ids"]))
    return parts


def save_checkpoint(model, opt, step, rng, ckpt: Path) -> None:
    """model.safetensors + optimizer.pt (tensors only; reloaded with weights_only=True) + state.json."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    model.save_pretrained(tmp)
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    st = rng.getstate()
    (tmp / "state.json").write_text(json.dumps({"step": step, "rng": [st[0], list(st[1]), st[2]]}))
    if ckpt.exists():
        old = ckpt.with_name(ckpt.name + ".old")
        ckpt.rename(old)
        tmp.rename(ckpt)
        import shutil

        shutil.rmtree(old)
    else:
        tmp.rename(ckpt)


def plot_curves(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    tr = [r for r in rows if "loss" in r]
    va = [r for r in rows if "val" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for k in ("mel", "duration", "pitch", "energy", "phoneme"):
        ax[0].plot([r["step"] for r in tr], [r[k] for r in tr], label=k)
        ax[1].plot([r["step"] for r in va], [r["val"][k] for r in va], label=k)
    for a, title in zip(ax, ("train", "validation")):
        a.set_yscale("log")
        a.set_xlabel("step")
        a.set_title(title)
        a.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------ adaptation
MODES = ("adaspeech", "speaker", "decoder", "nocln")


def _convert_nocln(model: AdaSpeech, speaker: torch.Tensor) -> None:
    """Freeze each CLN at this speaker's scale/bias into a plain layer norm with free scale/bias."""
    for blk in model.decoder:
        for name in ("norm1", "norm2"):
            cln: ConditionalLayerNorm = getattr(blk, name)
            with torch.no_grad():
                gamma = 1.0 + cln.w_gamma(speaker[None])[0]
                beta = cln.w_beta(speaker[None])[0]
            setattr(blk, name, FrozenScaleLayerNorm(gamma, beta))


def adapted_parameters(model: AdaSpeech, mode: str) -> dict[str, nn.Parameter]:
    """Name -> parameter fine-tuned in ``mode`` (the speaker embedding is handled separately)."""
    if mode == "speaker":
        return {}
    if mode == "adaspeech":
        return {n: p for n, p in model.named_parameters() if n.startswith("decoder.") and (".w_gamma." in n or ".w_beta." in n)}
    if mode == "nocln":
        return {n: p for n, p in model.named_parameters() if n.startswith("decoder.") and (".norm1." in n or ".norm2." in n)}
    if mode == "decoder":
        return {n: p for n, p in model.named_parameters() if n.startswith(("decoder.", "mel_linear."))}
    raise ValueError(f"unknown adaptation mode {mode!r}; choose one of {', '.join(MODES)}")


class Voice:
    """An adapted voice: speaker embedding, utterance-level reference vector, adapted parameters."""

    def __init__(self, mode: str, speaker: torch.Tensor, utterance: torch.Tensor, params: dict[str, torch.Tensor], meta: dict | None = None):
        self.mode, self.speaker, self.utterance, self.params = mode, speaker, utterance, params
        self.meta = meta or {}

    @property
    def n_adapted(self) -> int:
        """Parameters this voice stores (E^s plus its tensors)."""
        return int(self.speaker.numel() + sum(p.numel() for p in self.params.values()))

    @property
    def deployed(self) -> bool:
        """An AdaSpeech voice stored as each CLN's scale and bias rather than its W^gamma, W^beta."""
        return self.mode == "adaspeech" and self.meta.get("stored") == "gamma_beta"

    def deploy(self, model: AdaSpeech) -> Voice:
        """The voice as AdaSpeech deploys it (Sec. 2.3, Table 1's parameters per voice): each CLN's
        gamma = 1 + E^s W^gamma and beta = E^s W^beta computed once and stored in place of W^gamma and
        W^beta, plus E^s, which the encoder side still reads. 4 CLNs x 2 x 128 + 5 = 1,029 numbers
        instead of 5,125; synthesis is unchanged (a test holds them equal). Other modes are returned
        as they are."""
        if self.mode != "adaspeech" or self.deployed:
            return self
        m = self.apply(model)
        _convert_nocln(m, self.speaker)  # each CLN frozen at this speaker's gamma, beta
        params = {k: v.detach().clone() for k, v in adapted_parameters(m, "nocln").items()}
        return Voice(self.mode, self.speaker, self.utterance, params,
                     {**self.meta, "stored": "gamma_beta", "fine_tuned": self.n_adapted})

    def save(self, path) -> Path:
        from safetensors.torch import save_file

        from seqverse.core.clikit import atomic_path

        path = Path(path)
        tensors = {"speaker_embedding": self.speaker, "utterance_vector": self.utterance,
                   **{f"param.{k}": v for k, v in self.params.items()}}
        meta = {"mode": self.mode, "n_adapted": str(self.n_adapted), **{k: str(v) for k, v in self.meta.items()}}
        with atomic_path(path) as tmp:  # 0644, no partial file on failure
            save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        return path

    @classmethod
    def load(cls, path) -> Voice:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such voice file")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:
            raise InputError(f"{path}: not an AdaSpeech voice file ({err})") from err
        if "speaker_embedding" not in tensors or "mode" not in meta:
            raise InputError(f"{path}: not an AdaSpeech voice file (no speaker_embedding / mode)")
        params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
        extra = {k: v for k, v in meta.items() if k not in ("mode", "n_adapted")}
        return cls(meta["mode"], tensors["speaker_embedding"], tensors["utterance_vector"], params, extra)

    def apply(self, model: AdaSpeech) -> AdaSpeech:
        """A copy of ``model`` carrying this voice's adapted parameters."""
        m = copy.deepcopy(model)
        if self.mode == "nocln" or self.deployed:
            _convert_nocln(m, self.speaker)
        own = dict(m.named_parameters())
        with torch.no_grad():
            for k, v in self.params.items():
                if k not in own or own[k].shape != v.shape:
                    raise InputError(f"voice parameter {k} {tuple(v.shape)} does not fit this model")
                own[k].copy_(v)
        return m.eval()


class AdaptationCache:
    """Teacher-forced adaptation with everything upstream of the speaker embedding precomputed.

    With encoder, acoustic encoders and variance embeddings frozen, the phoneme hidden states are
    ``base + speaker_proj(E^s)``, and length regulation is linear, so decoder input frames are
    ``LR(base + pitch/energy embeddings) + speaker_proj(E^s)``. :meth:`loss` equals
    :func:`step_loss` minus its phoneme-predictor term (constant when frozen); a test holds them
    equal. It makes a 20-utterance adaptation step cost one decoder pass.
    """

    def __init__(self, model: AdaSpeech, items: list[dict]):
        from seqverse.speech.adaspeech.model import length_regulate, phoneme_average_mel

        b = collate(items)
        self.batch = b
        with torch.no_grad():
            was = model.training
            model.eval()
            pmask = torch.arange(b["phonemes"].shape[1])[None] >= b["phoneme_lengths"][:, None]
            self.utterance = model.utterance_vector(b["mel"], b["mel_lengths"])
            h = model.encode(b["phonemes"], pmask) + self.utterance[:, None, :]
            avg = phoneme_average_mel(model.normalise_mel(b["mel"]), b["durations"])
            h = h.masked_fill(pmask.unsqueeze(-1), 0.0) + model.phoneme_proj(model.phoneme_encoder(avg, pmask)).masked_fill(pmask.unsqueeze(-1), 0.0)
            self.base = h
            ve = model.pitch_embedding(torch.bucketize(b["pitch"], model.bins)) + model.energy_embedding(torch.bucketize(b["energy"], model.bins))
            self.frames, lengths = length_regulate(h + ve, b["durations"], b["mel"].shape[1])
            self.frames_no_variance, _ = length_regulate(h, b["durations"], b["mel"].shape[1])
            self.fmask = torch.arange(self.frames.shape[1])[None] >= lengths[:, None]
            self.pmask = pmask
            self.target = model.normalise_mel(b["mel"])
            model.train(was)

    def loss(self, model: AdaSpeech, speaker: torch.Tensor, rows: torch.Tensor | None = None,
             predicted_variance: bool = False) -> tuple[torch.Tensor, dict]:
        """``predicted_variance`` feeds the decoder the (frozen) predictors' pitch and energy, as
        at inference, instead of the recordings' (durations stay the recordings')."""
        from seqverse.speech.adaspeech.model import masked_mean

        sel = slice(None) if rows is None else rows
        pmask, fmask = self.pmask[sel], self.fmask[sel]
        np_, nf = int((~pmask).sum(1).max()), int((~fmask).sum(1).max())  # trim padding of this mini-batch
        pmask, fmask = pmask[:, :np_], fmask[:, :nf]
        sp = model.speaker_proj(speaker)[None, None, :]
        h = (self.base[sel][:, :np_] + sp).masked_fill(pmask.unsqueeze(-1), 0.0)
        keep_p = ~pmask
        parts = {
            "duration": masked_mean((model.duration_predictor(h, pmask).squeeze(-1) - torch.log(self.batch["durations"][sel][:, :np_].float() + 1.0)) ** 2, keep_p),
            "pitch": masked_mean((model.pitch_predictor(h, pmask).squeeze(-1) - self.batch["pitch"][sel][:, :np_]) ** 2, keep_p),
            "energy": masked_mean((model.energy_predictor(h, pmask).squeeze(-1) - self.batch["energy"][sel][:, :np_]) ** 2, keep_p),
        }
        if predicted_variance:
            from seqverse.speech.adaspeech.model import length_regulate

            with torch.no_grad():
                pp = model.pitch_predictor(h, pmask).squeeze(-1)
                ee = model.energy_predictor(h, pmask).squeeze(-1)
                ve = model.pitch_embedding(torch.bucketize(pp, model.bins)) + model.energy_embedding(torch.bucketize(ee, model.bins))
                ve, _ = length_regulate(ve, self.batch["durations"][sel][:, :np_], nf)
            frames = (self.frames_no_variance[sel][:, :nf] + ve + sp).masked_fill(fmask.unsqueeze(-1), 0.0)
        else:
            frames = (self.frames[sel][:, :nf] + sp).masked_fill(fmask.unsqueeze(-1), 0.0)
        spk = speaker[None].expand(frames.shape[0], -1)
        parts["mel"] = masked_mean((model.decode(frames, fmask, spk) - self.target[sel][:, :nf]).abs(), ~fmask)
        total = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite adaptation loss ({parts})")
        return total, {k: float(v.detach()) for k, v in parts.items()}


def adapt(model: AdaSpeech, items: list[dict], mode: str = "adaspeech", steps: int = 150, lr: float | None = None,
          seed: int = 0, init_speaker: torch.Tensor | None = None, batch_size: int = 10, progress: bool = False,
          return_model: bool = False, predicted_variance: bool = False):
    """Fine-tune ``mode``'s parameters of a copy of ``model`` on ``items`` (about 20 utterances).

    Everything else is frozen (requires_grad off); the returned :class:`Voice` holds only the
    adapted tensors (``return_model`` also returns the fine-tuned copy, for inspection).
    Mini-batches of ``batch_size`` utterances, Adam.
    """
    from tqdm import tqdm

    if not items:
        raise InputError("adaptation needs at least one utterance")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(False)
    speaker = nn.Parameter((init_speaker if init_speaker is not None else model.speaker_embedding.weight.mean(0)).detach().clone())
    if mode == "nocln":
        _convert_nocln(m, speaker.detach())
    params = adapted_parameters(m, mode)
    for p in params.values():
        p.requires_grad_(True)
    lr = lr or {"adaspeech": 1e-2, "speaker": 1e-2, "decoder": 3e-4, "nocln": 1e-2}[mode]
    opt = torch.optim.Adam([{"params": [speaker], "lr": 1e-2}, {"params": list(params.values()), "lr": lr}])
    cache = AdaptationCache(m, items)
    m.train()
    n = len(items)
    for _ in tqdm(range(steps), desc=f"adapt ({mode})", disable=not progress):
        rows = None if n <= batch_size else torch.randperm(n, generator=gen)[:batch_size]
        total, _ = cache.loss(m, speaker, rows, predicted_variance=predicted_variance)
        opt.zero_grad()
        total.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        _, final = cache.loss(m, speaker, predicted_variance=predicted_variance)
    voice = Voice(mode, speaker.detach().clone(), cache.utterance.mean(0).detach().clone(),
                  {k: v.detach().clone() for k, v in params.items()},
                  {"utterances": n, "steps": steps, "final_loss": json.dumps(final)})
    return (voice, m) if return_model else voice


def source_voice(model: AdaSpeech, speaker: str, utterance: torch.Tensor) -> Voice:
    """A source speaker as a voice (no adaptation): its embedding and a reference vector."""
    if speaker not in model.config.speakers:
        raise InputError(f"unknown source speaker {speaker!r}")
    i = model.config.speakers.index(speaker)
    return Voice("speaker", model.speaker_embedding.weight[i].detach().clone(), utterance, {}, {"source_speaker": speaker})


__all__ = ["MODES", "Voice", "adapt", "adapted_parameters", "collate", "load_items", "train", "asdict"]
