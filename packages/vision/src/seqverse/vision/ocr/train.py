"""Training following the paper (Sec. 3): stage 1 text lines, stage 2 the chunk curriculum.

Stage 1 (instance-level pretraining, as TrOCR's own) trains on single printed lines. Stage 2 trains
on random crops of *whole-line bands* whose maximum height grows linearly over training until it
covers the chunk size used at inference (the model's input height). Pages are rendered on the fly
by :mod:`.synth` from page seeds in ``[0, TRAIN_SEED_LIMIT)``; evaluation corpora use
``write_corpus(seed=S)`` with ``S >= 500``, whose page seeds lie above that range.

Everything needed to resume lives in ``OUT/last/``: the model (safetensors), the optimizer state
(safetensors, no pickle) and ``trainer_state.json`` (step, curriculum, history).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import synth
from .metrics import cer
from .model import CharTokenizer, ChunkProcessor, OCRConfig, build_model, save

TRAIN_SEED_LIMIT = 500_000_000
VAL_SEED_BASE = 900_000_000


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 12
    lr: float = 1.5e-3
    warmup: int = 60
    line_steps: int = 150  # stage 1: single lines
    grow_steps: int = 350  # stage 2: band height grows from one line to the input height over these steps
    bands_per_page: int = 6
    eval_every: int = 150
    save_every: int = 25
    val_bands: int = 24
    seed: int = 0
    scramble: float = 0.5  # stage 1: share of pages whose words are random characters (half that in stage 2)
    ctc_weight: float = 0.5  # joint CTC loss on single lines (conv-stem encoder only); 0 turns it off
    init: str = ""  # start from this checkpoint's weights (fresh optimizer), e.g. an earlier run's last/
    model: OCRConfig = field(default_factory=OCRConfig)


def max_band_height(tc: TrainConfig, step: int, line_h: float) -> float:
    """The curriculum: one line during stage 1, then linear growth up to the input height."""
    H = tc.model.image_height
    if step < tc.line_steps:
        return line_h
    frac = min(1.0, (step - tc.line_steps) / max(1, tc.grow_steps))
    return line_h + frac * (H - line_h)


def page_bands(page: synth.Rendered, proc: ChunkProcessor, rng: random.Random, n: int, h_max: float | None):
    """Random whole-line bands of one page at the model's page scale: ``[(image, text)]``.

    ``h_max=None`` means single lines (stage 1).
    """
    img = proc.page_scale(page.image)
    s = img.width / page.image.width
    boxes = [(t * s, b * s) for t, b in page.boxes]
    out = []
    for _ in range(n):
        i = rng.randrange(len(boxes))
        j = i + 1
        if h_max is not None:
            target = rng.uniform(boxes[i][1] - boxes[i][0], h_max)
            while j < len(boxes) and boxes[j][1] - boxes[i][0] <= target:
                j += 1
        top = max(0, int(boxes[i][0]) - rng.randint(0, 3))
        bot = min(img.height, int(math.ceil(boxes[j - 1][1])) + rng.randint(-2, 2))
        out.append((img.crop((0, top, img.width, bot)), "\n".join(page.lines[i:j])))
    return out


def make_batch(tc: TrainConfig, proc, tok, step: int, rng: random.Random):
    bands = []
    stage1 = step < tc.line_steps
    while len(bands) < tc.batch_size:
        scramble = rng.random() < (tc.scramble if stage1 else tc.scramble / 2)
        page = synth.render_receipt(rng.randrange(TRAIN_SEED_LIMIT), scramble=scramble)
        lh = (page.boxes[0][1] - page.boxes[0][0]) * proc.cfg.image_width / page.image.width
        h = None if step < tc.line_steps else max_band_height(tc, step, lh)
        bands += page_bands(page, proc, rng, tc.bands_per_page, h)
    bands = bands[: tc.batch_size]
    x = proc.pixel_values([b[0] for b in bands], fit=tc.model.encoder == "convvit")
    return x, labels_tensor([b[1] for b in bands], tok, tc.model.max_length), [b[1] for b in bands]


def ctc_loss(model, hidden, height: int, texts, tok) -> torch.Tensor | None:
    """Joint CTC loss of the encoder's column classifier on the single-line samples of a batch."""
    enc = model.encoder
    rows = [i for i, t in enumerate(texts) if "\n" not in t and t]
    if getattr(enc, "ctc_head", None) is None or not rows:
        return None
    logp = enc.ctc_logits(hidden[rows], height).float().log_softmax(-1).transpose(0, 1)  # (T, B, C)
    targets = [torch.tensor(tok.encode(texts[i])[:-1]) for i in rows]
    return torch.nn.functional.ctc_loss(
        logp, torch.cat(targets), torch.full((len(rows),), logp.shape[0], dtype=torch.long),
        torch.tensor([len(t) for t in targets]), blank=tok.pad_token_id, zero_infinity=True)


def labels_tensor(texts, tok, max_length):
    ids = [tok.encode(t)[:max_length] for t in texts]
    y = torch.full((len(ids), max(map(len, ids))), -100, dtype=torch.long)
    for i, row in enumerate(ids):
        y[i, : len(row)] = torch.tensor(row)
    return y


def val_set(tc: TrainConfig, proc):
    rng = random.Random(12345)
    bands = []
    for i in range(tc.val_bands // 4):
        page = synth.render_receipt(VAL_SEED_BASE + i)
        bands += page_bands(page, proc, rng, 4, tc.model.image_height)
    return bands


@torch.no_grad()
def validate(model, proc, bands, batch_size: int = 16) -> float:
    model.eval()
    preds = []
    for k in range(0, len(bands), batch_size):
        x = proc.pixel_values([b[0] for b in bands[k : k + batch_size]])
        ids = model.generate(pixel_values=x, max_new_tokens=proc.cfg.max_length, num_beams=1, do_sample=False)
        preds += proc.decode(ids)
    model.train()
    return cer(preds, [b[1] for b in bands])


def _save_state(out: Path, model, opt, tc, tok, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = out / "last.tmp"
    save(model, tc.model, tok, tmp, extra={"train": {k: v for k, v in asdict(tc).items() if k != "model"}, "step": state["step"]})
    tensors, meta = {}, {}
    for pid, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "optimizer_meta": meta}, indent=1))
    last = out / "last"
    if last.exists():
        old = out / "last.old"
        last.rename(old)
        tmp.rename(last)
        import shutil

        shutil.rmtree(old)
    else:
        tmp.rename(last)


def _load_state(out: Path, model, opt):
    from safetensors.torch import load_file
    from transformers import VisionEncoderDecoderModel

    last = out / "last"
    loaded = VisionEncoderDecoderModel.from_pretrained(last, local_files_only=True)
    model.load_state_dict(loaded.state_dict())
    t = load_file(last / "optimizer.safetensors")
    sd = opt.state_dict()
    state = {}
    for key, v in t.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)
    return json.loads((last / "trainer_state.json").read_text())


def train(out_dir: str | Path, tc: TrainConfig, progress: bool = True, log=print) -> dict:
    """Train (or resume) into ``out_dir``; returns the trainer state with the validation history."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(tc.seed)
    tok = CharTokenizer()
    model = build_model(tc.model, len(tok))
    model.train()
    proc = ChunkProcessor(tc.model, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=0.01, betas=(0.9, 0.98))
    state = {"step": 0, "history": [], "seconds": 0.0}
    if (out / "last" / "trainer_state.json").exists():
        state = _load_state(out, model, opt)
        log(f"resumed from {out / 'last'} at step {state['step']}")
    elif tc.init:
        from transformers import VisionEncoderDecoderModel

        from . import convvit  # noqa: F401

        src = VisionEncoderDecoderModel.from_pretrained(tc.init, local_files_only=True).state_dict()
        missing, unexpected = model.load_state_dict(src, strict=False)
        log(f"initialised from {tc.init} (new: {missing}, dropped: {unexpected})")
    val = val_set(tc, proc)
    rng = random.Random(tc.seed * 7919 + state["step"])
    bar = tqdm(total=tc.steps, initial=state["step"], disable=not progress, desc="train", unit="step")
    losses, ctc_losses = [], [0.0]
    t0 = time.time()
    while state["step"] < tc.steps:
        step = state["step"]
        lr = tc.lr * min(1.0, (step + 1) / tc.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / tc.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, texts = make_batch(tc, proc, tok, step, rng)
        enc = model.encoder(pixel_values=x)
        loss = model(encoder_outputs=enc, labels=y).loss
        if tc.ctc_weight > 0:
            aux = ctc_loss(model, enc.last_hidden_state, x.shape[2], texts, tok)
            if aux is not None:
                ctc_losses.append(aux.item())
                loss = loss + tc.ctc_weight * aux
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        state["step"] = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", ctc=f"{np.mean(ctc_losses[-20:]):.2f}")
        if state["step"] % tc.eval_every == 0 or state["step"] == tc.steps:
            v = validate(model, proc, val)
            state["history"].append({"step": state["step"], "loss": float(np.mean(losses[-50:])), "val_cer": v})
            log(f"step {state['step']} loss {np.mean(losses[-50:]):.4f} val_cer {v:.4f}")
        if state["step"] % tc.save_every == 0 or state["step"] == tc.steps:
            state["seconds"] = state.get("seconds", 0.0) + time.time() - t0
            t0 = time.time()
            _save_state(out, model, opt, tc, tok, state)
    bar.close()
    return state


def export(run_dir: str | Path, dst: str | Path, default_chunks: int = 15, metrics: dict | None = None,
           command: str = "") -> Path:
    """Copy a run's model (no optimizer state) into ``dst`` with a model card; the embedded default."""
    import shutil

    src = Path(run_dir) / "last" if (Path(run_dir) / "last").is_dir() else Path(run_dir)
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "model.safetensors", "ocr_vocab.json"):
        shutil.copy2(src / name, tmp / name)
    meta = json.loads((src / "ocr_config.json").read_text())
    meta["default_chunks"] = default_chunks
    (tmp / "ocr_config.json").write_text(json.dumps(meta, indent=2))
    state = json.loads((src / "trainer_state.json").read_text())
    encoder = ("hybrid conv-stem ViT (`seqverse_convvit`, stride 8)" if meta.get("encoder", "vit") == "convvit"
               else f"ViT ({meta['patch_height']}x{meta['patch_width']} patches)")
    hist = "\n".join(f"| {h['step']} | {h['loss']:.4f} | {100 * h['val_cer']:.2f} |" for h in state["history"])
    card = f"""# seqverse TrOCR for receipts (embedded default)

Small TrOCR (`transformers.VisionEncoderDecoderModel`: {encoder} encoder over a
{meta['image_height']}x{meta['image_width']} grayscale chunk; TrOCR decoder over characters), trained from scratch on synthetic receipts
(`seqverse.vision.ocr.synth`, fonts DejaVu + Liberation; GNU FreeFont held out).

- Training: stage 1 single lines, stage 2 chunk curriculum (paper Sec. 3), {state['step']} steps,
  {state.get('seconds', 0) / 3600:.2f} h on a shared 2-core CPU (1 thread), seed {meta['train']['seed']}.
- Settings: {json.dumps(meta['train'])}
- Command: `{command or 'seqverse-vision ocr train -o runs/ocr/stage'}` then
  `seqverse-vision ocr export {run_dir} --chunks {default_chunks}`.
- Inference default: {default_chunks} chunks per page (borders snapped to line gaps).

Validation ({meta['train']['val_bands']} whole-line bands of pages with seeds 900,000,000+, greedy decoding without the
loop clipping and rule counting that `ocr read` applies, so a decoding loop weighs heavily here; the
training loss includes `ctc_weight` x the CTC loss):

| step | train loss | val CER % |
|---|---|---|
{hist}

Benchmark metrics: {json.dumps(metrics) if metrics else 'see benchmarks/vision/results/ocr.md'}
"""
    (tmp / "README.md").write_text(card)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst
