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


def step_loss(model: AdaSpeech, batch: dict, speaker: torch.Tensor, utterance=None, count=None) -> tuple[torch.Tensor, dict]:
    """``count``: see ``model.masked_mean`` (``global_sum`` gives this rank's data-parallel part)."""
    out = model(batch["phonemes"], batch["phoneme_lengths"], speaker, ref_mel=batch["mel"], ref_lengths=batch["mel_lengths"],
                utterance=utterance, durations=batch["durations"], pitch=batch["pitch"], energy=batch["energy"], mel=batch["mel"])
    parts = losses(out, model.normalise_mel(batch["mel"]), batch["durations"], batch["pitch"], batch["energy"], count)
    total = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
    if not torch.isfinite(total):
        bad = [k for k, v in parts.items() if not torch.isfinite(v)]
        raise FloatingPointError(f"non-finite loss ({', '.join(bad)}) on utterances {batch.get('ids')}")
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ------------------------------------------------------------------------------ training
class SourceBatches:
    """The endless stream of source-training batches: length buckets of at most ``max_frames``
    frames in an order drawn from ``rng`` (a ``random.Random`` state), refilled when used up. The
    engine replays it to the checkpointed position on resume, so resumed runs see the same batches."""

    def __init__(self, items: list[dict], max_frames: int, rng_state, index: dict):
        self.items, self.max_frames, self.rng_state, self.index = items, max_frames, rng_state, index

    def __iter__(self):
        rng = random.Random()
        rng.setstate(self.rng_state)
        while True:
            queue = batches(self.items, self.max_frames, rng)
            while queue:
                yield collate(queue.pop(), self.index)


def source_loss(model: AdaSpeech, batch: dict) -> tuple[torch.Tensor, dict]:
    """The weighted AdaSpeech loss of a source-speaker batch (and its parts, for the log), as this
    rank's part: sums over its rows / counts over every data-parallel rank (``loss_is_part``; the
    plain masked means on one process)."""
    from seqverse.core.train import global_sum

    total, parts = step_loss(model, batch, model.speaker_vectors(batch["speaker_ids"]), count=global_sum)
    return total, {k: global_sum(v) for k, v in parts.items()}  # the logged parts: whole-batch values


def source_lr_factor(step: int, steps: int, warmup: int = 400) -> float:
    """Linear warm-up over ``warmup`` steps, times a cosine from 1 to 0.1 at ``steps``."""
    return min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))


def train_source(model: AdaSpeech, train_items: list[dict], val_items: list[dict], out: Path | None, steps: int,
                 max_frames: int, lr: float, rng_state, checkpoint_every: int = 250, progress: bool = True, mesh=None,
                 warmup: int = 400):
    """Source-model training with :func:`seqverse.core.train.fit`: AdamW (0.9, 0.98), the warm-up x
    cosine lr, clipping at 1; validation losses, ``model/``, ``metrics.jsonl`` and ``curves.png``
    every ``checkpoint_every`` steps. Returns the engine's FitResult."""
    from seqverse.core.train import TrainConfig, fit

    index = {s: i for i, s in enumerate(model.config.speakers)}

    def eval_fn(m):
        return {f"val_{k}": v for k, v in evaluate_loss(m, val_items, index).items()}

    def on_step(step, record):
        if out is not None and (step % checkpoint_every == 0 or step == steps) and _rank0():
            model.save_pretrained(out / "model")
            plot_curves(out)

    config = TrainConfig(steps=steps, lr=lr, betas=(0.9, 0.98), weight_decay=0.0, clip_norm=1.0, seed=None,
                         out_dir=str(out) if out is not None else None, checkpoint_every=checkpoint_every,
                         eval_every=checkpoint_every, log_every=25, progress=progress, loss_is_part=True)
    return fit(model, SourceBatches(train_items, max_frames, rng_state, index), source_loss, config,
               eval_fn=eval_fn if val_items else None, schedule=lambda s: source_lr_factor(s, steps, warmup), on_step=on_step,
               mesh=mesh)


def _rank0() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def source_timbres(summary: dict) -> list[str]:
    """The corpus's base timbres of source speakers, in corpus order (see ``corpus.Speaker.base``)."""
    from seqverse.speech.adaspeech.corpus import Speaker

    out = []
    for s in summary["speakers"]:
        base = Speaker(**s).base
        if s["role"] == "source" and base not in out:
            out.append(base)
    return out


def train(corpus_dir, out_dir, steps: int = 6000, max_frames: int = 6000, lr: float = 1e-3, seed: int = 0,
          checkpoint_every: int = 250, config_overrides: dict | None = None, progress: bool = True,
          n_timbres: int | None = None, warmup: int = 400) -> dict:
    """Train (or resume, from ``out_dir/checkpoint``) the multi-speaker source model on the corpus's
    source speakers (``n_timbres``: only those of the first N base timbres, for the gap-vs-timbres curve)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utts, summary = load_corpus(corpus_dir)
    source = [u for u in utts if u["role"] == "source"]
    if n_timbres is not None:
        from seqverse.speech.adaspeech.corpus import Speaker

        keep = set(source_timbres(summary)[:n_timbres])
        names = {s["name"] for s in summary["speakers"] if Speaker(**s).base in keep}
        source = [u for u in source if u["speaker"] in names]
    speakers = sorted({u["speaker"] for u in source})
    rng = random.Random(seed)
    torch.manual_seed(seed)
    held = set(rng.sample([u["id"] for u in source], max(1, len(source) // 50)))
    items = load_items(corpus_dir, source)
    train_items = [it for it in items if it["id"] not in held]
    val_items = [it for it in items if it["id"] in held]
    if (out / "checkpoint" / "trainer_state.json").is_file() and (out / "model" / "config.json").is_file():  # resume
        model = AdaSpeech(AdaSpeechConfig(**json.loads((out / "model" / "config.json").read_text())))
    else:
        mels = torch.cat([it["mel"] for it in train_items])
        cfg = AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=speakers, mel_mean=mels.mean(0).tolist(),
                              mel_std=(mels.std(0) + 1e-3).tolist(), stats=summary["stats"], **(config_overrides or {}))
        model = AdaSpeech(cfg)
        model.save_pretrained(out / "model")
    result = train_source(model, train_items, val_items, out, steps, max_frames, lr, rng.getstate(), checkpoint_every, progress,
                          warmup=warmup)
    index = {s: i for i, s in enumerate(model.config.speakers)}
    return {"step": result.steps_done, "val": evaluate_loss(model, val_items, index), "out": str(out / "model")}


@torch.no_grad()
def evaluate_loss(model: AdaSpeech, items: list[dict], index: dict) -> dict:
    model.eval()
    batch = collate(items, index)
    _, parts = step_loss(model, batch, model.speaker_vectors(batch["speaker_ids"]))
    return parts


def plot_curves(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    tr = [r for r in rows if r["step"] % 25 == 0]
    va = [r for r in rows if "val_mel" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for k in ("mel", "duration", "pitch", "energy", "phoneme"):
        ax[0].plot([r["step"] for r in tr], [r[k] for r in tr], label=k)
        ax[1].plot([r["step"] for r in va], [r[f"val_{k}"] for r in va], label=k)
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
        at inference, instead of the recordings' (durations stay the recordings'). Under data
        parallelism each masked mean is this rank's part (its sums over the global counts), so the
        ranks' losses add up to the one-process loss (``TrainConfig.loss_is_part``)."""
        from seqverse.core.train import global_sum

        def masked_mean(x, keep):  # model.masked_mean over this rank's rows / the count over every DP rank
            keep = keep.to(x.dtype)
            while keep.dim() < x.dim():
                keep = keep.unsqueeze(-1)
            return (x * keep).sum() / max(global_sum(keep.expand_as(x).sum()), 1.0)

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


class _Adaptee(nn.Module):
    """The model copy and the speaker embedding E^s being fitted, as one module (so that data
    parallelism sees every trained parameter)."""

    def __init__(self, model: AdaSpeech, speaker: nn.Parameter):
        super().__init__()
        self.model, self.speaker = model, speaker


class AdaptationRows:
    """Each step's mini-batch: ``batch_size`` utterance rows drawn from one seeded generator (all rows when fewer)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        while True:
            yield torch.arange(self.n) if self.n <= self.batch_size else torch.randperm(self.n, generator=gen)[: self.batch_size]


def adapt(model: AdaSpeech, items: list[dict], mode: str = "adaspeech", steps: int = 150, lr: float | None = None,
          seed: int = 0, init_speaker: torch.Tensor | None = None, batch_size: int = 10, progress: bool = False,
          return_model: bool = False, predicted_variance: bool = False):
    """Fine-tune ``mode``'s parameters of a copy of ``model`` on ``items`` (about 20 utterances).

    Everything else is frozen (requires_grad off); the returned :class:`Voice` holds only the
    adapted tensors (``return_model`` also returns the fine-tuned copy, for inspection).
    Mini-batches of ``batch_size`` utterances, Adam, through :func:`seqverse.core.train.fit`.
    """
    from seqverse.core.train import TrainConfig, fit

    if not items:
        raise InputError("adaptation needs at least one utterance")
    torch.manual_seed(seed)
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
    cache = AdaptationCache(m, items)
    n = len(items)

    def loss_fn(adaptee, rows):
        return cache.loss(adaptee.model, adaptee.speaker, rows, predicted_variance=predicted_variance)

    config = TrainConfig(steps=steps, seed=None, device="cpu", progress=progress, progress_desc=f"adapt ({mode})",
                         loss_is_part=True)
    if steps > 0:
        fit(_Adaptee(m, speaker), AdaptationRows(n, batch_size, seed), loss_fn, config,
            optimizer=lambda _: torch.optim.Adam([{"params": [speaker], "lr": 1e-2}, {"params": list(params.values()), "lr": lr}]))
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
