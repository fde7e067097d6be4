"""Training, in the paper's order: FLINT prior, then the perceptual judges, then EMOTE in two stages.

Every run goes through the shared engine (``seqverse.core.train.fit``): checkpointed and resumable
in ``<out>/checkpoint``, metrics in ``<out>/metrics.jsonl``, the final weights in ``<out>/model``
(config.json + model.safetensors). A finished run (``<out>/model`` present) is skipped, so
``train_all`` can be rerun after an interruption and continues where it stopped.

EMOTE (Sec. 3.3-3.4 of the paper; inferno ``train_emote_stage_1/2.py``): stage 1 trains with the
vertex loss alone; stage 2 adds the lip-reading loss, the sequence-level emotion loss and the
content-emotion exchange (the emotion conditions of the batch are rolled by one; the swapped
output's emotion features must match the emotion donor's target, its lip features the content
source's target). The best validation checkpoint (lip vertex error on validation voices) is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqverse.core.clikit import InputError
from seqverse.speech.emote import judges as J
from seqverse.speech.emote.corpus import load_split
from seqverse.speech.emote.data import COMBOS, Geometry, MotionDataset, full_sequence
from seqverse.speech.emote.model import (
    EMOTE,
    FLINT,
    EMOTEConfig,
    FLINTConfig,
    from_pretrained,
    save_pretrained,
)
from seqverse.speech.emote.motion import EMOTIONS, N_ACTORS

VARIANTS = {
    # name: (use_prior, stage-2 perceptual losses, exchange, closure loss in both stages)
    "emote": (True, True, True, False),
    "no_exchange": (True, True, False, False),
    "no_prior": (False, True, True, False),
    "regression": (False, False, False, False),   # FaceFormer-style direct regression: vertex loss only
    # beyond the paper: the lip-closure loss (``closure_loss``), with and without the motion prior
    "emote_closure": (True, True, True, True),
    "no_prior_closure": (False, True, True, True),
    "no_exchange_closure": (True, True, False, True),
}
# vertex MSE in mm^2; "param": MSE of expression + 10 x jaw angle (inferno's expression_loss / jawpose_loss
# beside vertex_loss), which keeps the jaw out of the rotation's far local minima seen with vertices alone;
# "closure": ``closure_loss`` in mm^2 (only the *_closure variants); "opening": ``opening_loss`` and
# "closed_lips": ``closed_lip_loss``, both mm^2 (off unless set; round 5)
# "switch": binary cross-entropy of a closure-switch model's gate against the target's closed frames (round 7)
LOSS_WEIGHTS = {"vertex": 1.0, "param": 10.0, "lip": 10.0, "emotion": 5.0, "closure": 1.0, "opening": 0.0,
                "closed_lips": 0.0, "switch": 10.0}
JAW_SCALE = 10.0


def param_mse(pred, target):
    e = pred.shape[-1] - 3
    return F.mse_loss(pred[..., :e], target[..., :e]) + F.mse_loss(JAW_SCALE * pred[..., e:], JAW_SCALE * target[..., e:])


def mouth_opening(geo, motion, identity):
    """[B, T] distance (mm) between the inner upper- and lower-lip midpoint vertices (what the closure metric reads)."""
    pair = geo.vertices(motion, identity, tuple(int(i) for i in geo.face.lip_vertices))
    return (pair[..., 0, :] - pair[..., 1, :]).norm(dim=-1)


def _closed(opening):
    """1.0 on the frames whose lips are closed (opening <= CLOSED_MM, what the closure metric counts)."""
    from seqverse.speech.emote.evaluate import CLOSED_MM

    return (opening <= CLOSED_MM).float()


def closure_loss(geo, pred, target, identity, two_sided: bool = False):
    """Lip-closure loss (ours, beyond the paper): where the target's lips are closed (opening <= CLOSED_MM), the
    squared excess of the predicted opening over the target's, averaged over those frames (mm^2; 0 if none).

    Why: a bilabial closes the lips for 1-2 frames at 25 fps; the vertex loss averages that over the sequence,
    and a model unsure of the /p b m/ regresses to a half-open mouth (the models without it kept a median 6-8 mm
    at held-out bilabials while the targets close to 1.7 mm). One-sided: closing more than the target is free;
    ``two_sided``: the squared difference, so pressing the lips further than the target costs too.
    """
    open_p, open_t = mouth_opening(geo, pred, identity), mouth_opening(geo, target, identity)
    closed = _closed(open_t)
    diff = (open_p - open_t) if two_sided else torch.relu(open_p - open_t)
    return (closed * diff ** 2).sum() / closed.sum().clamp_min(1.0)


def closed_lip_loss(geo, pred, target, identity):
    """Lip-shape loss at the target's closures (ours, round 5): squared error of the lip-region vertices
    (``geo.lips``, mm^2 summed over x/y/z, mean over vertices) averaged over the frames where the target's
    lips are closed. Why: ``closure_loss`` asks only for a small midpoint distance, which a model can reach
    with the wrong lip shape (jaw instead of lip press); this asks for the target's whole closed lips."""
    closed = _closed(mouth_opening(geo, target, identity))
    err = ((geo.vertices(pred, identity, geo.lips) - geo.vertices(target, identity, geo.lips)) ** 2).sum(-1).mean(-1)
    return (closed * err).sum() / closed.sum().clamp_min(1.0)


def opening_loss(geo, pred, target, identity):
    """Mouth-opening loss (ours, round 5): squared error of the inner-lip opening over every frame (mm^2).

    Why: with the one-sided closure loss alone the models learnt to close early and long around a
    bilabial (closing more is free there), which costs lip vertex error on the frames around it; this
    term holds the opening to the target's everywhere, at the weight of one lip-midpoint distance."""
    return ((mouth_opening(geo, pred, identity) - mouth_opening(geo, target, identity)) ** 2).mean()


def closure_stages(closure: bool, late: bool = False) -> tuple[bool, bool]:
    """Whether stage 1 and stage 2 use the closure loss: both for the *_closure variants, or (``late``, round 6c)
    stage 2 only, so that stage 1 learns the opening from the vertex loss before the closures are asked for."""
    return (closure and not late, closure)


def _fit(model, data, loss_fn, out, steps, lr, batch_size, eval_fn=None, monitor=None, seed=0, progress=True,
         eval_every: int | None = None):
    """One engine run; with ``eval_fn``, validation every ``eval_every`` steps (default: a third of the run)
    and the best validation checkpoint restored at the end."""
    from seqverse.core.train import TrainConfig, fit

    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, schedule="cosine", warmup=0.05, clip_norm=1.0,
                      seed=seed, out_dir=str(out), checkpoint_every=100,
                      eval_every=(eval_every or max(steps // 3, 1)) if eval_fn else 0,
                      log_every=10, monitor=monitor, monitor_mode="min", restore_best=eval_fn is not None,
                      progress=progress, progress_desc=Path(out).name, device="cpu")
    result = fit(model, data, loss_fn, cfg, eval_fn=eval_fn)
    if getattr(result, "interrupted", False):   # SIGINT/SIGTERM: checkpointed; rerun to resume, save nothing final
        raise KeyboardInterrupt(f"{out}: interrupted at step {result.steps_done} (checkpointed; rerun to resume)")
    return result


def _done(out) -> bool:
    return (Path(out) / "model" / "model.safetensors").is_file()


def train_flint(corpus, out, steps=300, batch_size=16, lr=1e-3, seed=0, progress=True, param_weight=10.0,
                quant_factor: int = 2) -> dict:
    """FLINT (Sec. 3.1): VAE reconstruction of generator-A motion crops; vertex MSE (mm^2) + 0.005 KL, plus the
    parameter loss (``param_weight``; 0 = inferno's geometry-only recipe, which here reconstructed the lips
    to only 5.7 mm LVE after 1,200 steps: small vertex MSE, but lip press and jaw off at the closures)."""
    out = Path(out)
    if _done(out):
        return {"skipped": str(out)}
    torch.manual_seed(seed)
    geo = Geometry()
    data = MotionDataset(load_split(corpus, "train"), crop=64, generator="a", seed=seed)
    val = [full_sequence(u, *COMBOS[i % len(COMBOS)], i % N_ACTORS) for i, u in enumerate(load_split(corpus, "val"))]
    model = FLINT(FLINTConfig(quant_factor=quant_factor))   # 2**quant_factor frames per latent step

    def loss_fn(m, b):
        rec, kl = m(b["motion"])
        vert = ((geo.vertices(rec, b["identity"], geo.loss) - geo.vertices(b["motion"], b["identity"], geo.loss)) ** 2).sum(-1).mean()
        par = param_mse(rec, b["motion"])
        loss = vert + param_weight * par + m.config.kl_weight * kl
        return loss, {"vertex_mse": vert.item(), "param_mse": par.item(), "kl": kl.item()}

    def eval_fn(m):
        errs = []
        with torch.no_grad():
            for s in val:
                x = torch.from_numpy(s["motion"])[None]
                rec, _ = m(x, sample=False)
                errs.append(lip_vertex_error(geo, rec[0], x[0], s["identity"], s["n_frames"]))
        return {"val_lve": float(np.mean(errs))}

    r = _fit(model, data, loss_fn, out, steps, lr, batch_size, eval_fn, "val_lve", seed, progress)
    save_pretrained(model, out / "model")
    return {"best_val_lve": r.best_metric, "steps": r.steps_done}


def train_lipreader(corpus, out, arch="conv", steps=300, batch_size=16, lr=1e-3, seed=0, progress=True) -> dict:
    """Per-frame viseme classifier on generator-B motion (never the target generator)."""
    out = Path(out)
    if _done(out):
        return {"skipped": str(out)}
    torch.manual_seed(seed)
    geo = Geometry()
    data = MotionDataset(load_split(corpus, "train"), crop=64, generator="b", seed=seed + 17)
    model = J.LipReader(J.LipReaderConfig(arch=arch))

    def loss_fn(m, b):
        with torch.no_grad():
            lips = geo.displacement(b["motion"], b["identity"], geo.lips)
        logits = m(lips)
        loss = F.cross_entropy(logits.flatten(0, 1), b["visemes"].flatten())
        return loss, {"acc": float((logits.argmax(-1) == b["visemes"]).float().mean())}

    r = _fit(model, data, loss_fn, out, steps, lr, batch_size, None, None, seed, progress)
    save_pretrained(model, out / "model")
    return {"final_loss": r.history[-1]["loss"] if r.history else None, "steps": r.steps_done}


def train_emotion_classifier(corpus, out, steps=300, batch_size=16, lr=1e-3, seed=0, progress=True) -> dict:
    """Sequence-level emotion + intensity classifier on generator-A training targets (the emotion loss's network)."""
    out = Path(out)
    if _done(out):
        return {"skipped": str(out)}
    torch.manual_seed(seed)
    geo = Geometry()
    data = MotionDataset(load_split(corpus, "train"), crop=64, generator="a", seed=seed + 31)
    model = J.EmotionClassifier()

    def loss_fn(m, b):
        with torch.no_grad():
            lm = geo.displacement(b["motion"], b["identity"], geo.landmarks)
        emo, inten = m(lm)
        neutral = b["emotion"] == 0
        loss = F.cross_entropy(emo, b["emotion"])
        if (~neutral).any():
            loss = loss + 0.5 * F.cross_entropy(inten[~neutral], b["intensity"][~neutral])
        return loss, {"acc": float((emo.argmax(-1) == b["emotion"]).float().mean())}

    r = _fit(model, data, loss_fn, out, steps, lr, batch_size, None, None, seed, progress)
    save_pretrained(model, out / "model")
    return {"final_loss": r.history[-1]["loss"] if r.history else None, "steps": r.steps_done}


def lip_vertex_error(geo: Geometry, pred, target, identity: int, n_frames: int) -> float:
    """Lip vertex error: max L2 over the lip-region vertices per frame, averaged over frames (mm)."""
    idx = torch.tensor([identity])
    lips = tuple(int(i) for i in np.where(geo.face.lip_mask)[0])
    vp = geo.vertices(pred[None, :n_frames], idx, lips)[0]
    vt = geo.vertices(target[None, :n_frames], idx, lips)[0]
    return float((vp - vt).norm(dim=-1).amax(-1).mean())


def _cos_loss(a, b):
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()


def switched_motion(model, mel, emotion, intensity, style, closed):
    """Training output of a closure-switch model (model.py, round 7): each head where the target says it
    belongs (``closed`` [B, T], 1.0 on the target's closed-lip frames), so the closed head learns the
    closed lips and the open head the rest, and the gate's cross-entropy against ``closed``. At inference
    the gate picks the head (``EMOTE.forward``)."""
    open_lips, closed_lips, gate = model.switch_parts(mel, emotion, intensity, style)
    motion = torch.where(closed[..., None] > 0, closed_lips, open_lips)
    return motion, F.binary_cross_entropy_with_logits(gate, closed)


def emote_loss_fn(geo, lip_reader, emotion_net, perceptual: bool, exchange: bool, weights=LOSS_WEIGHTS,
                  closure: bool = False, two_sided: bool = False):
    """The EMOTE objective (Sec. 3.3-3.4) as a ``loss_fn(model, batch)`` for the engine (+ ``closure_loss``)."""

    def loss_fn(model, b):
        ident = b["identity"]
        switch = model.config.closure_switch
        if switch:
            closed = _closed(mouth_opening(geo, b["motion"], ident))
            pred, gate = switched_motion(model, b["mel"], b["emotion"], b["intensity"], b["actor"], closed)
        else:
            pred = model(b["mel"], b["emotion"], b["intensity"], b["actor"])
        vert = ((geo.vertices(pred, ident, geo.loss) - geo.vertices(b["motion"], ident, geo.loss)) ** 2).sum(-1).mean()
        par = param_mse(pred, b["motion"])
        logs = {"vertex_mse": vert.item(), "param_mse": par.item()}
        loss = weights["vertex"] * vert + weights["param"] * par
        if switch:
            loss = loss + weights["switch"] * gate
            logs["switch_bce"] = gate.item()
        if closure:
            clo = closure_loss(geo, pred, b["motion"], ident, two_sided)
            loss = loss + weights["closure"] * clo
            logs["closure"] = clo.item()
        for name, term in (("opening", opening_loss), ("closed_lips", closed_lip_loss)):
            if weights.get(name, 0.0) > 0:
                value = term(geo, pred, b["motion"], ident)
                loss = loss + weights[name] * value
                logs[name] = value.item()
        if perceptual:
            with torch.no_grad():
                lip_gt = lip_reader.features(geo.displacement(b["motion"], ident, geo.lips))
                emo_gt = emotion_net.features(geo.displacement(b["motion"], ident, geo.landmarks))
            lip = _cos_loss(lip_reader.features(geo.displacement(pred, ident, geo.lips)), lip_gt)
            emo = _cos_loss(emotion_net.features(geo.displacement(pred, ident, geo.landmarks)), emo_gt)
            loss = loss + weights["lip"] * lip + weights["emotion"] * emo
            logs.update(lip=lip.item(), emotion=emo.item())
            if exchange:
                # the emotion donor of each row is the previous row of the global batch (on N
                # data-parallel ranks the first row's donor is the previous rank's last row, as on one
                # process): the conditions and emotion targets are gathered (seqverse.core.train.gather_rows)
                from seqverse.core.train import gather_rows

                cond, start = gather_rows(torch.stack([b["emotion"], b["intensity"]], 1).float())
                emo_all, _ = gather_rows(emo_gt)
                perm = torch.roll(torch.arange(len(cond), device=pred.device), 1)[start : start + len(pred)]
                cond = cond.long()
                if switch:   # the content source's closed frames stay closed under the swapped emotion
                    swapped, gate_s = switched_motion(model, b["mel"], cond[perm, 0], cond[perm, 1], b["actor"], closed)
                    loss = loss + weights["switch"] * gate_s
                else:
                    swapped = model(b["mel"], cond[perm, 0], cond[perm, 1], b["actor"])
                lip_s = _cos_loss(lip_reader.features(geo.displacement(swapped, ident, geo.lips)), lip_gt)
                emo_s = _cos_loss(emotion_net.features(geo.displacement(swapped, ident, geo.landmarks)), emo_all[perm])
                loss = loss + weights["lip"] * lip_s + weights["emotion"] * emo_s
                logs.update(lip_exchange=lip_s.item(), emotion_exchange=emo_s.item())
                if closure:   # the content source's closures must hold under the swapped emotion too
                    clo_s = closure_loss(geo, swapped, b["motion"], ident, two_sided)
                    loss = loss + weights["closure"] * clo_s
                    logs["closure_exchange"] = clo_s.item()
        return loss, logs

    return loss_fn


def _frozen(directory):
    m = from_pretrained(directory)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def predict(model: EMOTE, mel: np.ndarray, emotion: int, intensity: int, actor: int) -> torch.Tensor:
    """[T, 23] motion for a whole utterance's [4T, 80] log-mel (T a multiple of the model's frames_per_step)."""
    with torch.no_grad():
        return model(torch.as_tensor(mel)[None], torch.tensor([emotion]), torch.tensor([intensity - 1]),
                     torch.tensor([actor]))[0]


def train_emote(corpus, out, flint_dir, lip_dir, emotion_dir, variant="emote", steps1=300, steps2=200,
                batch_size=8, lr=1e-3, seed=0, progress=True, augment: bool = False, closure_weight: float | None = None,
                closure_two_sided: bool = False, opening_weight: float = 0.0, closed_lip_weight: float = 0.0,
                closure_late: bool = False, closure_switch: bool = False, stage2_lr_scale: float = 0.5,
                eval_every: int | None = None, perceptual_scale: float = 1.0, phone_frontend: bool = False) -> dict:
    """EMOTE or one of its ablations/baselines (VARIANTS); stage 1 then stage 2, each resumable.

    ``augment``: VTLP + frequency-mask augmentation of the training audio (data.augment_mel);
    ``closure_weight`` overrides LOSS_WEIGHTS["closure"] for the *_closure variants;
    ``closure_two_sided``: :func:`closure_loss` penalises over-closing too; ``opening_weight``:
    :func:`opening_loss` on every frame (0 = off); ``closed_lip_weight``: :func:`closed_lip_loss` (0 = off);
    ``closure_late``: the closure loss in stage 2 only (:func:`closure_stages`); ``closure_switch``: the
    closed/open heads and their gate (model.py; variants without the prior only); ``stage2_lr_scale``: stage 2's
    learning rate as a fraction of stage 1's (0.5 as before round 7c); ``eval_every``: validation LVE every
    so many steps in each stage (default a third of the stage), the best checkpoint kept; ``perceptual_scale``
    multiplies the lip-reading and emotion weights (round 8: 0.1 brings their share of the stage-2 loss near
    the official configs', where they are a few percent of the vertex term); ``phone_frontend``: the audio
    encoder also reads the recognised phone track (round 11, phones.py; the corpus needs `emote corpus --phones`)."""
    out = Path(out)
    if _done(out):
        return {"skipped": str(out)}
    use_prior, perceptual, exchange, closure = VARIANTS[variant]
    weights = dict(LOSS_WEIGHTS, **({} if closure_weight is None else {"closure": closure_weight}),
                   opening=opening_weight, closed_lips=closed_lip_weight)
    weights["lip"] *= perceptual_scale
    weights["emotion"] *= perceptual_scale
    torch.manual_seed(seed)
    geo = Geometry()
    train_utts, val_utts = load_split(corpus, "train"), load_split(corpus, "val")
    if phone_frontend and (train_utts[0].track is None or val_utts[0].track is None):
        raise InputError(f"{corpus}: no phone tracks for the phone front end (run `emote corpus -o {corpus} --phones`)")
    data = MotionDataset(train_utts, crop=64, generator="a", seed=seed, augment=augment)
    val = [(full_sequence(u, *COMBOS[i % len(COMBOS)], i % N_ACTORS), COMBOS[i % len(COMBOS)], i % N_ACTORS)
           for i, u in enumerate(val_utts)]
    cfg = EMOTEConfig(use_prior=use_prior, closure_switch=closure_switch, phone_frontend=phone_frontend)
    if use_prior:
        flint = from_pretrained(flint_dir)
        cfg.flint = flint.config
    model = EMOTE(cfg)
    if use_prior:
        model.prior.load_state_dict(flint.decoder.state_dict())

    def eval_fn(m):
        m.eval()
        errs = [lip_vertex_error(geo, predict(m, s["mel"], EMOTIONS.index(e), i, a), torch.from_numpy(s["motion"]),
                                 s["identity"], s["n_frames"]) for s, (e, i), a in val]
        m.train()
        return {"val_lve": float(np.mean(errs))}

    lip_reader, emotion_net = _frozen(Path(lip_dir) / "model"), _frozen(Path(emotion_dir) / "model")
    stage1 = out / "stage1"
    if variant == "regression":
        r = _fit(model, data, emote_loss_fn(geo, None, None, False, False), stage1, steps1 + steps2, lr, batch_size,
                 eval_fn, "val_lve", seed, progress, eval_every)
        result = {"best_val_lve": r.best_metric, "steps": r.steps_done}
    else:
        closure1, closure2 = closure_stages(closure, closure_late)
        r1 = _fit(model, data, emote_loss_fn(geo, None, None, False, False, weights, closure1, closure_two_sided), stage1, steps1, lr,
                  batch_size, eval_fn, "val_lve", seed, progress, eval_every)
        r2 = _fit(model, data, emote_loss_fn(geo, lip_reader, emotion_net, perceptual, exchange, weights, closure2,
                                             closure_two_sided),
                  out / "stage2", steps2, lr * stage2_lr_scale, batch_size, eval_fn, "val_lve", seed + 1, progress,
                  eval_every)
        result = {"stage1_best_val_lve": r1.best_metric, "best_val_lve": r2.best_metric, "steps": r1.steps_done + r2.steps_done}
    save_pretrained(model, out / "model", {"variant": variant, "corpus": str(corpus), "seed": seed,
                                           "steps1": steps1, "steps2": steps2, "loss_weights": weights,
                                           "closure_loss": closure, "closure_two_sided": closure_two_sided, "closure_late": closure_late,
                                           "augment": augment, "stage2_lr_scale": stage2_lr_scale,
                                           "eval_every": eval_every})
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def train_all(corpus, run_dir, variants=("emote", "regression", "no_exchange", "no_prior"), flint_steps=1200,
              judge_steps=300, steps1=300, steps2=200, seed=0, progress=True, flint_param_weight=0.0,
              flint_quant_factor=2, augment=False, phone_frontend=False) -> dict:
    """The whole pipeline in order; rerunning continues from the last checkpoint of the unfinished run."""
    run = Path(run_dir)
    results = {"flint": train_flint(corpus, run / "flint", flint_steps, seed=seed, progress=progress,
                                    param_weight=flint_param_weight, quant_factor=flint_quant_factor),
               "lip_reader": train_lipreader(corpus, run / "lip_reader", "conv", judge_steps, seed=seed, progress=progress),
               "lip_judge": train_lipreader(corpus, run / "lip_judge", "gru", judge_steps, seed=seed + 100, progress=progress),
               "emotion_net": train_emotion_classifier(corpus, run / "emotion_net", judge_steps, seed=seed, progress=progress)}
    for v in variants:
        results[v] = train_emote(corpus, run / v, run / "flint" / "model", run / "lip_reader", run / "emotion_net", v,
                                 steps1, steps2, seed=seed, progress=progress, augment=augment,
                                 phone_frontend=phone_frontend)
    return results
