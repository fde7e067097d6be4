"""The lip-closure loss (beyond the paper) and the FLINT with less temporal compression (quant_factor 1)."""

import numpy as np
import torch

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.data import Geometry
from seqverse.speech.emote.evaluate import CLOSED_MM
from seqverse.speech.emote.model import EMOTE, EMOTEConfig, FLINTConfig
from seqverse.speech.emote.train import (
    VARIANTS,
    closed_lip_loss,
    closure_loss,
    emote_loss_fn,
    mouth_opening,
    opening_loss,
)

# "map a bomb" (as in test_motion.py)
PHONES = [(0.1, 0.18, "m", "PBM"), (0.18, 0.33, "ae", "AA"), (0.33, 0.41, "p", "PBM"), (0.41, 0.48, "ax", "AH"),
          (0.48, 0.55, "b", "PBM"), (0.55, 0.72, "aa", "AA"), (0.72, 0.80, "m", "PBM")]
GEO = Geometry()


def _target(emotion="happy", actor=2):
    expr, jaw = M.target_motion(PHONES, 24, emotion, 3, actor, seed=0)
    return torch.from_numpy(np.concatenate([expr, jaw], 1))[None], torch.tensor([M.actor_style(actor)["identity"]])


def test_mouth_opening_equals_face_model_reference():
    target, ident = _target()
    face = GEO.face
    ref = face.mouth_opening(face.vertices(target[0, :, :M.E].numpy(), target[0, :, M.E:].numpy(), int(ident)))
    assert np.allclose(mouth_opening(GEO, target, ident)[0].numpy(), ref, atol=1e-3)


def test_closure_loss_penalises_only_opening_at_target_closures():
    target, ident = _target()
    assert closure_loss(GEO, target, target, ident).item() == 0.0
    closed = (mouth_opening(GEO, target, ident) <= CLOSED_MM)[0]
    assert 0 < closed.sum() < len(closed)            # the target closes on the bilabials and opens elsewhere
    opened = target.clone()
    opened[..., M.E] += 0.15                         # jaw 0.15 rad further open everywhere
    opened.requires_grad_(True)
    loss = closure_loss(GEO, opened, target, ident)
    assert loss.item() > 4.0                         # > (2 mm)^2 at the closures
    loss.backward()
    assert opened.grad[0, closed, M.E].abs().min() > 0 and opened.grad[0, ~closed].abs().max() == 0
    shut = target.clone()
    shut[..., M.EXPR.index("lip_press")] = 1.0       # closing more than the target is free
    shut[..., M.E] = 0.0
    assert closure_loss(GEO, shut, target, ident).item() == 0.0
    no_closure = target.clone()
    no_closure[..., M.E] = 0.2                       # a target that never closes: no term
    assert closure_loss(GEO, opened.detach(), no_closure, ident).item() == 0.0


def test_two_sided_closure_and_opening_loss_penalise_over_closing():
    target, ident = _target()
    closed = (mouth_opening(GEO, target, ident) <= CLOSED_MM)[0]
    shut = target.clone()
    shut[..., M.EXPR.index("lip_press")] = 1.0       # lips pressed further than the target's
    shut[..., M.E] = 0.0
    gap = mouth_opening(GEO, shut, ident) - mouth_opening(GEO, target, ident)
    assert (gap[0, closed] < 0).any()
    two = closure_loss(GEO, shut, target, ident, two_sided=True)
    assert two.item() > 0.0 and abs(two.item() - (gap[0, closed] ** 2).mean().item()) < 1e-4
    assert closure_loss(GEO, target, target, ident, two_sided=True).item() == 0.0
    assert opening_loss(GEO, target, target, ident).item() == 0.0
    assert abs(opening_loss(GEO, shut, target, ident).item() - (gap ** 2).mean().item()) < 1e-4
    lips = GEO.lips
    err = ((GEO.vertices(shut, ident, lips) - GEO.vertices(target, ident, lips)) ** 2).sum(-1).mean(-1)[0]
    assert closed_lip_loss(GEO, target, target, ident).item() == 0.0
    assert abs(closed_lip_loss(GEO, shut, target, ident).item() - err[closed].mean().item()) < 1e-4
    batch = {"mel": torch.randn(1, 4 * 24, 80), "motion": target, "emotion": torch.tensor([1]),
             "intensity": torch.tensor([2]), "actor": torch.tensor([2]), "identity": ident}
    torch.manual_seed(0)
    m = EMOTE(EMOTEConfig(d_model=32, use_prior=False))
    weights = {"vertex": 1.0, "param": 10.0, "lip": 10.0, "emotion": 5.0, "closure": 1.0, "opening": 2.0}
    with_o, logs = emote_loss_fn(GEO, None, None, False, False, weights)(m, batch)
    without, plain = emote_loss_fn(GEO, None, None, False, False)(m, batch)
    assert "opening" in logs and "opening" not in plain
    assert abs(with_o.item() - without.item() - 2.0 * logs["opening"]) < 1e-3


def test_closure_variants_add_the_term_in_both_stages():
    assert VARIANTS["emote_closure"] == (True, True, True, True) and VARIANTS["no_prior_closure"][3]
    assert not any(VARIANTS[v][3] for v in ("emote", "no_exchange", "no_prior", "regression"))
    target, ident = _target()
    batch = {"mel": torch.randn(1, 4 * 24, 80), "motion": target, "emotion": torch.tensor([1]),
             "intensity": torch.tensor([2]), "actor": torch.tensor([2]), "identity": ident}
    torch.manual_seed(0)
    m = EMOTE(EMOTEConfig(d_model=32, use_prior=False))   # zero head: the neutral face, lips half open
    with_c, logs = emote_loss_fn(GEO, None, None, False, False, closure=True)(m, batch)
    without, plain = emote_loss_fn(GEO, None, None, False, False)(m, batch)
    assert "closure" in logs and "closure" not in plain and logs["closure"] > 0
    assert abs(with_c.item() - without.item() - logs["closure"]) < 1e-3


def test_flint_quant_factor_1_gives_two_frames_per_latent():
    c = FLINTConfig(d_model=32, latent_dim=8, quant_factor=1)
    m = EMOTE(EMOTEConfig(d_model=32, flint=c))
    assert m.frames_per_step == 2
    out = m(torch.randn(2, 4 * 10, 80), torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([0, 5]))
    assert out.shape == (2, 10, 23)        # 10 frames: a multiple of 2, not of 4


def test_vtlp_warp_moves_a_formant_and_identity_keeps_it():
    from seqverse.speech.emote.data import _mel_centres, augment_mel, warp_mel

    centres = _mel_centres()
    mel = np.full((3, len(centres)), -5.0, np.float32)
    k = int(np.argmin(np.abs(centres - 1000)))
    mel[:, k] = 0.0                                          # a "formant" at ~1 kHz
    assert np.allclose(warp_mel(mel, 1.0), mel)
    up = warp_mel(mel, 1.15)
    peak = centres[np.argmax(up[0])]
    assert 1.08 * centres[k] < peak < 1.25 * centres[k]      # moved up by about 15%
    aug = augment_mel(mel, np.random.default_rng(0), masks=2, max_width=8)
    assert aug.shape == mel.shape and np.isfinite(aug).all()


def test_augmented_dataset_changes_only_the_audio():
    from seqverse.speech.emote.corpus import Utterance
    from seqverse.speech.emote.data import MotionDataset

    rng = np.random.default_rng(0)
    u = Utterance("u0", "map a bomb", "v", rng.normal(size=(4 * 24, 80)).astype(np.float32), PHONES)
    plain, aug = MotionDataset([u], crop=16, seed=3)[5], MotionDataset([u], crop=16, seed=3, augment=True)[5]
    assert torch.equal(plain["motion"], aug["motion"]) and plain["emotion"] == aug["emotion"]
    assert plain["mel"].shape == aug["mel"].shape and not torch.equal(plain["mel"], aug["mel"])
