"""Training following the paper (Sec. 3): stage 1 text lines, stage 2 the chunk curriculum.

Stage 1 (instance-level pretraining, as TrOCR's own) trains on single printed lines. Stage 2 trains
on random crops of *whole-line bands* whose maximum height grows linearly over training until it
covers the chunk size used at inference (the model's input height). Pages are rendered on the fly
by :mod:`.synth` from page seeds in ``[0, TRAIN_SEED_LIMIT)``; evaluation corpora use
``write_corpus(seed=S)`` with ``S >= 500``, whose page seeds lie above that range. At every step a
share ``1 - template_share`` of the pages are template-free (:func:`synth.render_page`: dictionary
words, random strings, numbers), the rest receipts of the template (half of those with scrambled
words); all in the training font families (:data:`synth.TRAIN_FAMILIES`).

The loop is the shared engine (:func:`seqverse.core.train.fit`); ``OUT/checkpoint/`` holds what it
needs to resume (model, optimizer, RNG and the batch stream's position, safetensors + JSON, no
pickle); ``OUT/last/`` the trained model with ``trainer_state.json`` (step, validation history).
"""

from __future__ import annotations

import json
import math
import random
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
    guide_weight: float = 0.0  # CTC-guided cross-attention on single lines (needs ctc_weight > 0); 0 turns it off
    init: str = ""  # start from this checkpoint's weights (fresh optimizer), e.g. an earlier run's last/
    template_share: float = 0.2  # share of template receipts among the pages (the rest: synth.render_page)
    stem_init: str = ""  # "easyocr": start the "easyocr" stem from EasyOCR's pretrained CRNN convolutions
    stretch: tuple = ()  # (lo, hi): template-free pages scaled horizontally by a factor in it (synth.render_page)
    more_fonts: bool = False  # template-free pages also in synth.EXTRA_TRAIN_FAMILIES
    type_fonts: bool = False  # template-free pages also in synth.TYPE_TRAIN_FAMILIES (typewriter, serif)
    leaders: float = 0.0  # template-free pages: share of extra rows of leader dots or asterisks (synth.page_lines)
    styles: float = 0.0  # template-free pages: share drawn in a family's other faces (synth.style_faces)
    model: OCRConfig = field(default_factory=OCRConfig)


def max_band_height(tc: TrainConfig, step: int, line_h: float) -> float:
    """The curriculum: one line during stage 1, then linear growth up to the input height."""
    H = tc.model.image_height
    if step < tc.line_steps:
        return line_h
    frac = min(1.0, (step - tc.line_steps) / max(1, tc.grow_steps))
    return line_h + frac * (H - line_h)


def page_bands(page: synth.Rendered, proc: ChunkProcessor, rng: random.Random, n: int, h_max: float | None,
               scaled=None):
    """Random whole-line bands of one page at the model's page scale: ``[(image, text)]``.

    ``h_max=None`` means single lines (stage 1); ``scaled``: the page already at the model's scale.
    """
    img = scaled if scaled is not None else proc.page_scale(page.image)
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


def render_training_page(tc: TrainConfig, rng: random.Random, stage1: bool) -> synth.Rendered:
    """One training page: template-free with probability ``1 - template_share``, else a template
    receipt (scrambled words with probability ``scramble``, half that in stage 2)."""
    seed = rng.randrange(TRAIN_SEED_LIMIT)
    if rng.random() >= tc.template_share:
        families = synth.TRAIN_FAMILIES + (synth.installed_extra_families() if tc.more_fonts else ())
        families += synth.installed_type_families() if tc.type_fonts else ()
        return synth.render_page(seed, families=families, stretch=tuple(tc.stretch), leaders=tc.leaders,
                                 styles=tc.styles)
    scramble = rng.random() < (tc.scramble if stage1 else tc.scramble / 2)
    families = synth.TRAIN_FAMILIES if tc.model.scale == "height" else synth.TEMPLATE_FAMILIES
    return synth.render_receipt(seed, families=families, scramble=scramble)


def make_batch(tc: TrainConfig, proc, tok, step: int, rng: random.Random):
    bands = []
    stage1 = step < tc.line_steps
    while len(bands) < tc.batch_size:
        page = render_training_page(tc, rng, stage1)
        if not page.lines:
            continue
        img = proc.page_scale(page.image)
        lh = (page.boxes[0][1] - page.boxes[0][0]) * img.width / page.image.width
        h = None if stage1 else max_band_height(tc, step, lh)
        bands += page_bands(page, proc, rng, tc.bands_per_page, h, scaled=img)
    bands = bands[: tc.batch_size]
    x = proc.pixel_values([b[0] for b in bands], fit=tc.model.encoder == "convvit")
    return x, labels_tensor([b[1] for b in bands], tok, tc.model.max_length), [b[1] for b in bands]


def ctc_loss(model, hidden, height: int, texts, tok, reduction: str = "mean") -> torch.Tensor | None:
    """Joint CTC loss of the encoder's column classifier on the single-line samples of a batch
    (``reduction="none"``: one value per line, each divided by its target length)."""
    enc = model.encoder
    rows = [i for i, t in enumerate(texts) if "\n" not in t and t]
    if getattr(enc, "ctc_head", None) is None or not rows:
        return None
    logp = enc.ctc_logits(hidden[rows], height).float().log_softmax(-1).transpose(0, 1)  # (T, B, C)
    targets = [torch.tensor(tok.encode(texts[i])[:-1]) for i in rows]
    loss = torch.nn.functional.ctc_loss(
        logp, torch.cat(targets), torch.full((len(rows),), logp.shape[0], dtype=torch.long),
        torch.tensor([len(t) for t in targets]), blank=tok.pad_token_id, zero_infinity=True, reduction=reduction)
    if reduction == "none":  # as "mean" does before averaging: each line over its target length
        return loss / torch.tensor([max(len(t), 1) for t in targets], dtype=loss.dtype)
    return loss


def ctc_alignment(logp: np.ndarray, target: list[int], blank: int = 0) -> list[int] | None:
    """Viterbi forced alignment of ``target`` to per-column CTC log-probabilities ``logp`` ``(T, C)``:
    the column where each target character is first emitted on the best path (None if the line has
    fewer columns than the path needs)."""
    T, L = logp.shape[0], len(target)
    ext = [blank] + [x for t in target for x in (t, blank)]
    S = len(ext)
    if L == 0 or T < L:
        return None
    ext_a = np.array(ext)
    skip = np.zeros(S, dtype=bool)
    skip[2:] = (ext_a[2:] != blank) & (ext_a[2:] != ext_a[:-2])
    score = np.full(S, -np.inf)
    score[0], score[1] = logp[0, ext[0]], logp[0, ext[1]]
    back = np.zeros((T, S), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, T):
        cand = np.stack([score, np.r_[-np.inf, score[:-1]], np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)])
        back[t] = cand.argmax(0)
        score = cand.max(0) + logp[t, ext_a]
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    if not np.isfinite(score[s]):
        return None
    first = [0] * L
    for t in range(T - 1, -1, -1):
        if s % 2 == 1:
            first[s // 2] = t
        s -= int(back[t, s]) if t > 0 else 0
    return first


def guided_attention_loss(cross_attention: torch.Tensor, grid_rows: int, columns: dict[int, list[int]],
                          window: int = 1) -> torch.Tensor | None:
    """CTC-guided cross-attention (a training aid, as the joint CTC loss): for each single line ``i`` with a
    CTC alignment ``columns[i]`` (the column of each character), minus the log of the attention mass
    the decoder step that writes character k puts within ``window`` columns of that character
    (heads averaged, grid rows summed); one value per line (mean over its characters)."""
    if not columns:
        return None
    B, H, Q, K = cross_attention.shape
    per_col = cross_attention.mean(1).view(B, Q, grid_rows, K // grid_rows).sum(2)  # (B, Q, columns)
    out = []
    for i, cols in columns.items():
        c = torch.tensor(cols)
        idx = (c[:, None] + torch.arange(-window, window + 1)[None]).clamp(0, per_col.shape[2] - 1)
        mass = per_col[i, : len(cols)].gather(1, idx).sum(1)
        out.append(-torch.log(mass.clamp_min(1e-6)).mean())
    return torch.stack(out)


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
        page = synth.render_page(VAL_SEED_BASE + i) if tc.template_share < 1 else synth.render_receipt(VAL_SEED_BASE + i)
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


class TrainBatches:
    """The endless stream of training batches ``(pixels, labels, texts)``: pages rendered from
    seeds drawn by one ``random.Random``, cut into bands by the curriculum of the step. Its position
    (step and generator state) is checkpointed by the engine (``state_dict``), so a resumed run
    continues the same stream without re-rendering it."""

    def __init__(self, tc: TrainConfig, proc, tok):
        self.tc, self.proc, self.tok = tc, proc, tok
        self.step, self.rng = 0, random.Random(tc.seed * 7919)

    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"step": self.step, "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def __iter__(self):
        while True:
            batch = make_batch(self.tc, self.proc, self.tok, self.step, self.rng)
            self.step += 1  # before the yield: the state then describes the batches handed out
            yield batch


def ocr_loss(model, batch, ctc_weight: float, tok, guide_weight: float = 0.0):
    """Cross-entropy of the decoder (mean over label tokens) plus ``ctc_weight`` x the encoder's CTC
    loss (mean over the single-line samples), as this rank's part: sums over its own samples divided
    by the counts over every data-parallel rank (:func:`seqverse.core.train.global_sum`; on one
    process, the plain means), so that N ranks' parts add up to the one-process loss."""
    from seqverse.core.train import global_sum

    x, y, texts = batch
    enc = model.encoder(pixel_values=x)
    out = model(encoder_outputs=enc, labels=y, output_attentions=guide_weight > 0)
    logits = out.logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100,
                                             reduction="sum") / global_sum((y != -100).sum())
    extra = {}
    if ctc_weight > 0:
        per_line = ctc_loss(model, enc.last_hidden_state, x.shape[2], texts, tok, reduction="none")
        lines = global_sum(0 if per_line is None else len(per_line))  # every rank joins the count
        if per_line is not None:
            aux = per_line.sum() / lines
            extra["ctc"] = aux.item()
            loss = loss + ctc_weight * aux
    if guide_weight > 0:
        rows = [i for i, t in enumerate(texts) if "\n" not in t and t]
        columns = {}
        if rows:
            with torch.no_grad():
                logp = model.encoder.ctc_logits(enc.last_hidden_state[rows], x.shape[2]).float().log_softmax(-1)
            for j, i in enumerate(rows):
                cols = ctc_alignment(logp[j].numpy(), tok.encode(texts[i])[:-1], tok.pad_token_id)
                if cols is not None:
                    columns[i] = cols
        per_line = guided_attention_loss(out.cross_attentions[-1], x.shape[2] // model.encoder.config.stride_h, columns)
        lines = global_sum(0 if per_line is None else len(per_line))
        if per_line is not None:
            aux = per_line.sum() / lines
            extra["guide"] = aux.item()
            loss = loss + guide_weight * aux
    return loss, extra


def lr_factor(tc: TrainConfig, step: int) -> float:
    """Linear warm-up over ``tc.warmup`` steps, times a cosine from 1 to 0.1 at ``tc.steps``."""
    return min(1.0, (step + 1) / tc.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / tc.steps))))


def train(out_dir: str | Path, tc: TrainConfig, progress: bool = True, log=print, mesh=None, stop_step: int | None = None) -> dict:
    """Train (or resume, from ``OUT/checkpoint``) into ``out_dir`` with :func:`seqverse.core.train.fit`
    (AdamW 0.9/0.98, the warm-up x cosine lr, clipping at 1, a checkpoint every ``save_every`` steps,
    validation CER every ``eval_every``); writes the model to ``OUT/last/`` and returns the trainer
    state (step, validation history, seconds). ``stop_step`` stops early (resumable; the schedule stays that of ``tc.steps``)."""
    from seqverse.core.train import TrainConfig as EngineConfig
    from seqverse.core.train import fit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(tc.seed)
    tok = CharTokenizer()
    model = build_model(tc.model, len(tok))
    proc = ChunkProcessor(tc.model, tok)
    if (out / "checkpoint").is_dir():
        log(f"resuming from {out / 'checkpoint'}")
    elif tc.init:
        from transformers import VisionEncoderDecoderModel

        from . import convvit  # noqa: F401

        src = VisionEncoderDecoderModel.from_pretrained(tc.init, local_files_only=True).state_dict()
        missing, unexpected = model.load_state_dict(src, strict=False)
        log(f"initialised from {tc.init} (new: {missing}, dropped: {unexpected})")
    if tc.stem_init == "easyocr" and not (out / "checkpoint").is_dir():
        from .convvit import load_easyocr_stem

        log(f"stem from EasyOCR english_g2: {', '.join(load_easyocr_stem(model.encoder.stem))}")
    for flag, on, table, installed in (("--more-fonts", tc.more_fonts, synth.EXTRA_TRAIN_FAMILIES, synth.installed_extra_families),
                                       ("--type-fonts", tc.type_fonts, synth.TYPE_TRAIN_FAMILIES, synth.installed_type_families)):
        if on:
            absent = sorted(set(table) - set(installed()))
            log(f"{flag}: {len(table) - len(absent)} families"
                + (f"; not installed, so not trained on: {', '.join(absent)}" if absent else ""))
    val = val_set(tc, proc) if tc.val_bands else []

    def on_step(step, record):
        if "val_cer" in record:
            log(f"step {step} loss {record['loss']:.4f} val_cer {record['val_cer']:.4f}")

    engine = EngineConfig(steps=tc.steps, lr=tc.lr, weight_decay=0.01, betas=(0.9, 0.98), clip_norm=1.0, seed=None,
                          out_dir=str(out), checkpoint_every=tc.save_every, eval_every=tc.eval_every, progress=progress,
                          stop_step=stop_step, loss_is_part=True)
    result = fit(model, TrainBatches(tc, proc, tok), lambda m, b: ocr_loss(m, b, tc.ctc_weight, tok, tc.guide_weight), engine,
                 eval_fn=(lambda m: {"val_cer": validate(m, proc, val)}) if val else None,
                 schedule=lambda step: lr_factor(tc, step), on_step=on_step, mesh=mesh)
    losses = result.losses()
    history = [{"step": h["step"], "loss": float(np.mean(losses[max(0, h["step"] - 50) : h["step"]])), "val_cer": h["val_cer"]}
               for h in result.history if "val_cer" in h]
    state = {"step": result.steps_done, "history": history, "seconds": result.history[-1]["seconds"] if result.history else 0.0}
    if not _rank0():
        return state
    tmp = out / "last.tmp"
    save(model, tc.model, tok, tmp, extra={"train": {k: v for k, v in asdict(tc).items() if k != "model"}, "step": state["step"]})
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    import shutil

    shutil.rmtree(out / "last", ignore_errors=True)
    tmp.rename(out / "last")
    return state


def _rank0() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def export(run_dir: str | Path, dst: str | Path, default_chunks: int | None = None, metrics: dict | None = None,
           command: str = "", reading: dict | None = None) -> Path:
    """Copy a run's model (no optimizer state) into ``dst`` with a model card; the embedded default.
    ``reading``: the model's reading defaults (``lines``, ``decoder``, ``ctc_weight``; read.read_pages)."""
    import shutil

    src = Path(run_dir) / "last" if (Path(run_dir) / "last").is_dir() else Path(run_dir)
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "model.safetensors", "ocr_vocab.json"):
        shutil.copy2(src / name, tmp / name)
        (tmp / name).chmod(0o644)  # runs saved before save() set it have a 0600 model.safetensors
    meta = json.loads((src / "ocr_config.json").read_text())
    height = meta.get("scale", "width") == "height"
    if default_chunks is None and not height:
        default_chunks = 15
    meta["default_chunks"] = default_chunks
    reading = dict(reading or {})
    from .read import check_reading

    check_reading(height, reading.get("lines", False), reading.get("decoder", "attention"),
                  reading.get("ctc_weight", 0.5), reading.get("crop", False))
    meta["reading"] = reading
    (tmp / "ocr_config.json").write_text(json.dumps(meta, indent=2))
    state = json.loads((src / "trainer_state.json").read_text())
    encoder = (f"hybrid conv-stem ViT (`seqverse_convvit`, {meta.get('stem', 'conv')} stem, stride "
               f"{meta.get('stride_h', 8)}x{meta.get('stride_w', 8)})" if meta.get("encoder", "vit") == "convvit"
               else f"ViT ({meta['patch_height']}x{meta['patch_width']} patches)")
    scale = (f"pages scaled so the line pitch is {meta['line_pitch']} px, chunks up to {meta['image_height']}x"
             f"{meta['image_width']} px of their own width" if height
             else f"pages scaled to {meta['image_width']} px wide, {meta['image_height']}x{meta['image_width']} chunks")
    chunks = (f"{default_chunks} chunks per page" if default_chunks
              else ("one chunk a printed line (read.line_borders: ink-profile gaps and valleys, a tilted page "
                    "levelled first, thin lines at the baseline of their band)") if reading.get("lines")
              else "chunks of about 0.6 x the input height (read.auto_chunks)")
    if reading.get("decoder") == "joint":
        chunks += f", joint CTC/attention decoding with CTC weight {reading.get('ctc_weight', 0.5)} (ocr.joint)"
    if reading.get("crop"):
        chunks += ", each chunk cut to its inked columns"
    reading_flags = "".join([" --lines" if reading.get("lines") else "",
                             f" --decoder {reading['decoder']}" if "decoder" in reading else "",
                             f" --ctc-weight {reading['ctc_weight']}" if "ctc_weight" in reading else "",
                             " --crop" if reading.get("crop") else ""])
    hist = "\n".join(f"| {h['step']} | {h['loss']:.4f} | {100 * h['val_cer']:.2f} |" for h in state["history"])
    card = f"""# seqverse TrOCR for receipts (embedded default)

Small TrOCR (`transformers.VisionEncoderDecoderModel`: {encoder} encoder over a grayscale chunk,
{scale}; TrOCR decoder over characters), trained on synthetic pages (`seqverse.vision.ocr.synth`:
template-free pages and template receipts, share {meta['train'].get('template_share', 1.0)} of the latter;
font families held out of training: GNU FreeFont, URW base35, Courier Prime).

- Training: stage 1 single lines, stage 2 chunk curriculum (paper Sec. 3), {state['step']} steps,
  {state.get('seconds', 0) / 3600:.2f} h of training on a 2-core CPU, seed {meta['train']['seed']}.
- Settings: {json.dumps(meta['train'])}
- Command: `{command or 'seqverse-vision ocr train -o runs/ocr/stage'}` then
  `seqverse-vision ocr export {run_dir}{f' --chunks {default_chunks}' if default_chunks and height else ''}{reading_flags}`.
- Inference default: {chunks}.

Validation ({meta['train']['val_bands']} whole-line bands of pages with seeds 900,000,000+, greedy decoding without the
loop guard that `ocr read` applies, so a decoding loop weighs heavily here; the training loss includes
`ctc_weight` x the CTC loss):

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
