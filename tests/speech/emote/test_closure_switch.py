"""The closure switch (round 7, beyond the paper): closed/open heads at the frame rate and a gate between them."""

import numpy as np
import pytest
import torch

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.data import Geometry
from seqverse.speech.emote.evaluate import CLOSED_MM
from seqverse.speech.emote.model import EMOTE, MOTION_DIM, EMOTEConfig, from_pretrained, save_pretrained
from seqverse.speech.emote.train import emote_loss_fn, mouth_opening, switched_motion

PHONES = [(0.1, 0.18, "m", "PBM"), (0.18, 0.33, "ae", "AA"), (0.33, 0.41, "p", "PBM"), (0.41, 0.48, "ax", "AH"),
          (0.48, 0.55, "b", "PBM"), (0.55, 0.72, "aa", "AA"), (0.72, 0.80, "m", "PBM")]
GEO = Geometry()


def _switch_model(seed=0):
    torch.manual_seed(seed)
    m = EMOTE(EMOTEConfig(use_prior=False, closure_switch=True, d_model=32, ff=64))
    for head in (m.head, m.closed_head):    # away from the zero start, so the two heads differ
        torch.nn.init.normal_(head.weight, std=0.05)
    return m.eval()


def _inputs(t=24, b=2):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, 4 * t, 80, generator=g), torch.tensor([1, 3]), torch.tensor([2, 0]), torch.tensor([0, 4]))


def test_switch_needs_no_prior():
    with pytest.raises(ValueError, match="use_prior=False"):
        EMOTEConfig(use_prior=True, closure_switch=True)


def test_inference_takes_the_head_the_gate_picks():
    m = _switch_model()
    x = _inputs()
    with torch.no_grad():
        open_lips, closed_lips, gate = m.switch_parts(*x)
        out = m(*x)
    assert 0 < (gate > 0).sum() < gate.numel()   # both heads are used somewhere at this initialisation
    for b in range(out.shape[0]):
        for t in range(out.shape[1]):
            ref = closed_lips[b, t] if gate[b, t] > 0 else open_lips[b, t]
            assert torch.equal(out[b, t], ref)
    assert not torch.equal(open_lips, closed_lips)


def test_training_output_follows_the_target_and_gate_loss_is_cross_entropy():
    m = _switch_model()
    x = _inputs()
    closed = torch.zeros(2, 24)
    closed[0, 3:6] = 1.0
    closed[1, 20:] = 1.0
    motion, bce = switched_motion(m, *x, closed)
    open_lips, closed_lips, gate = m.switch_parts(*x)
    mask = closed.bool()
    assert torch.allclose(motion[mask], closed_lips[mask]) and torch.allclose(motion[~mask], open_lips[~mask])
    p = torch.sigmoid(gate)
    ref = -(closed * p.log() + (1 - closed) * (1 - p).log()).mean()
    assert torch.allclose(bce, ref, atol=1e-6)


def test_loss_trains_each_head_on_its_own_frames_only():
    expr, jaw = M.target_motion(PHONES, 24, "happy", 3, 2, seed=0)
    target = torch.from_numpy(np.concatenate([expr, jaw], 1))[None].float()
    ident = torch.tensor([M.actor_style(2)["identity"]])
    closed = (mouth_opening(GEO, target, ident) <= CLOSED_MM)[0]
    assert 0 < closed.sum() < len(closed)
    m = _switch_model().train()
    batch = {"mel": _inputs(b=1)[0], "emotion": torch.tensor([1]), "intensity": torch.tensor([2]),
             "actor": torch.tensor([2]), "identity": ident, "motion": target}
    loss, logs = emote_loss_fn(GEO, None, None, False, False)(m, batch)
    assert "switch_bce" in logs
    # the closed head's gradient comes only from closed frames: zero it where the target is open and the
    # head's weight gradient must vanish too (the same for the open head)
    h = m._hidden(batch["mel"], batch["emotion"], batch["intensity"], batch["actor"])
    grads = torch.autograd.grad(loss, [m.closed_head.bias, m.head.bias, h], retain_graph=True, allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    only_open = target.clone()
    only_open[..., M.E] = 0.3          # a target that never closes: the closed head gets no gradient
    batch["motion"] = only_open
    loss, _ = emote_loss_fn(GEO, None, None, False, False)(m, batch)
    g_closed, g_open = torch.autograd.grad(loss, [m.closed_head.bias, m.head.bias])
    assert g_closed.abs().sum() == 0 and g_open.abs().sum() > 0


def test_switch_model_round_trips(tmp_path):
    m = _switch_model()
    save_pretrained(m, tmp_path / "m")
    back = from_pretrained(tmp_path / "m")
    assert back.config.closure_switch
    x = _inputs()
    with torch.no_grad():
        assert torch.equal(m(*x), back(*x))
    assert back(*x).shape == (2, 24, MOTION_DIM)


def test_threshold_moves_the_decision():
    m = _switch_model()
    x = _inputs()
    with torch.no_grad():
        open_lips, closed_lips, gate = m.switch_parts(*x)
        p = torch.sigmoid(gate)
        for t in (0.2, 0.5, 0.8):
            m.config.switch_threshold = t
            out = m(*x)
            ref = torch.where((p > t)[..., None], closed_lips, open_lips)
            assert torch.equal(out, ref)
