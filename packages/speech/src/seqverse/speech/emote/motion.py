"""Generated face motion: visemes with coarticulation (two different generators) and emotion dynamics.

Content (speech) motion comes from the phone alignment:
- **generator A** (the training targets): JALI-style (Edwards et al. 2016) separate jaw and lip
  channels, each blended by Cohen-Massaro dominance functions (1993) with a plateau over the phone:
  D_i(t) = a_v * exp(-max(0, |t - c_i| - d_i/2) / tau_v); the value is sum_i D_i T_i / sum_i D_i.
  Bilabials /p b m/ dominate the lips and jaw (a = 60) so the lips close on them, vowels dominate
  the jaw, rounded sounds spread far (anticipatory rounding).
- **generator B** (only for training the lip reader, so the lip-reading loss is not the target's
  own rule): keyframes at 40% of each phone, viseme targets perturbed per sequence, linear
  interpolation, then a Gaussian blur; no dominance, no plateau, different timing.

Emotion is expression dynamics over the whole sequence (as in MEAD's acted emotions): an action-unit
profile per emotion (neutral + 7, MEAD's set) scaled by intensity (1..3), an actor-specific gain per
action unit, an onset ramp, a slow fluctuation, blinks, and a change of articulation (jaw amplitude,
lip spread) that never touches the lip closure of bilabials.
"""

from __future__ import annotations

import numpy as np

from seqverse.speech.emote.corpus import FPS, VISEMES

EXPR = ["lip_corner_pull", "lip_corner_depress", "lip_pucker", "lip_funnel", "lip_press", "lip_stretch",
        "upper_lip_raise", "lower_lip_depress", "chin_raise", "lip_tighten", "inner_brow_raise", "outer_brow_raise",
        "brow_lower", "cheek_raise", "upper_lid_raise", "lid_tighten", "eye_blink", "nose_wrinkle", "dimpler",
        "nostril_dilate"]
E = len(EXPR)
_I = {n: i for i, n in enumerate(EXPR)}

# viseme -> (jaw opening in radians, lip action units)
VISEME_TARGETS = {
    "sil": (0.015, {}), "PBM": (0.0, {"lip_press": 1.0}), "FV": (0.03, {"chin_raise": 0.5, "upper_lip_raise": 0.4}),
    "TH": (0.07, {}), "TDN": (0.06, {"lip_stretch": 0.2}), "L": (0.09, {}), "SZ": (0.03, {"lip_stretch": 0.5}),
    "SH": (0.05, {"lip_funnel": 0.8, "lip_pucker": 0.3}), "KG": (0.08, {}),
    "R": (0.05, {"lip_pucker": 0.5, "lip_funnel": 0.3}), "W": (0.03, {"lip_pucker": 1.0}),
    "AA": (0.22, {"lower_lip_depress": 0.3}), "EH": (0.14, {"lip_stretch": 0.4}),
    "IY": (0.06, {"lip_stretch": 0.7, "lip_corner_pull": 0.2}), "OO": (0.09, {"lip_pucker": 0.8, "lip_funnel": 0.5}),
    "AO": (0.17, {"lip_funnel": 0.6}), "AH": (0.12, {}),
}
LIP_AUS = sorted({k for _, aus in VISEME_TARGETS.values() for k in aus})
# dominance strength (jaw channel, lip channel) and spread tau in seconds
_VOWELS = {"AA", "EH", "IY", "OO", "AO", "AH"}
_ROUND = {"W", "OO", "SH", "R"}


def _dominance(v: str) -> tuple[float, float, float]:
    if v == "PBM":
        return 60.0, 60.0, 0.015
    if v == "FV":
        return 3.0, 8.0, 0.03
    if v in _VOWELS:
        return 2.0, 1.0, 0.06
    if v in _ROUND:
        return 1.0, 3.0, 0.12
    if v == "sil":
        return 0.6, 0.6, 0.05
    return 0.7, 0.8, 0.04


def viseme_targets(v: str) -> tuple[float, np.ndarray]:
    jaw, aus = VISEME_TARGETS[v]
    t = np.zeros(E)
    for k, w in aus.items():
        t[_I[k]] = w
    return jaw, t


def frame_times(n_frames: int) -> np.ndarray:
    return (np.arange(n_frames) + 0.5) / FPS


def frame_visemes(phones, n_frames: int) -> np.ndarray:
    """[T] viseme id of the phone under each frame centre (sil outside the phones)."""
    t = frame_times(n_frames)
    lab = np.zeros(n_frames, dtype=np.int64)
    for s, e, _p, v in phones:
        lab[(t >= s) & (t < e)] = VISEMES.index(v)
    return lab


def _with_silence(phones, t_end: float) -> list:
    """The phones with silence before the first and after the last (the synthesiser's leading/trailing pause)."""
    phones = list(phones)
    if not phones:
        return [(0.0, t_end + 1.0, "", "sil")]
    lead = [(0.0, phones[0][0], "", "sil")] if phones[0][0] > 0 else []
    return lead + phones + [(phones[-1][1], max(phones[-1][1], t_end) + 1.0, "", "sil")]


def content_generator_a(phones, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Generator A: [T, E] lip action units and [T] jaw opening by plateau dominance blending (see module doc)."""
    t = frame_times(n_frames)
    phones = _with_silence(phones, t[-1])
    num_j, den_j = np.zeros(n_frames), np.zeros(n_frames)
    num_l, den_l = np.zeros((n_frames, E)), np.zeros(n_frames)
    for s, e, _p, v in phones:
        a_jaw, a_lip, tau = _dominance(v)
        dist = np.maximum(0.0, np.abs(t - (s + e) / 2) - (e - s) / 2)
        d = np.exp(-dist / tau)
        jaw, lips = viseme_targets(v)
        num_j += a_jaw * d * jaw
        den_j += a_jaw * d
        num_l += (a_lip * d)[:, None] * lips
        den_l += a_lip * d
    return num_l / np.maximum(den_l, 1e-9)[:, None], num_j / np.maximum(den_j, 1e-9)


def content_generator_b(phones, n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Generator B: keyframes at 40% of each phone, per-sequence perturbed targets, linear + Gaussian blur."""
    from scipy.ndimage import gaussian_filter1d

    t = frame_times(n_frames)
    gain = {v: rng.uniform(0.75, 1.25) for v in VISEMES}
    keys_t, keys_j, keys_l = [0.0], [0.015], [np.zeros(E)]
    for s, e, _p, v in phones:
        jaw, lips = viseme_targets(v)
        keys_t.append(s + 0.4 * (e - s))
        keys_j.append(jaw * gain[v])
        keys_l.append(lips * gain[v])
    keys_t.append(t[-1] + 1.0)
    keys_j.append(0.015)
    keys_l.append(np.zeros(E))
    keys_t, keys_j, keys_l = np.array(keys_t), np.array(keys_j), np.array(keys_l)
    order = np.argsort(keys_t, kind="stable")
    jaw = np.interp(t, keys_t[order], keys_j[order])
    lips = np.stack([np.interp(t, keys_t[order], keys_l[order, k]) for k in range(E)], 1)
    sigma = 0.03 * FPS
    return gaussian_filter1d(lips, sigma, axis=0), gaussian_filter1d(jaw, sigma)


# ---------------------------------------------------------------- emotion
EMOTIONS = ["neutral", "happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt"]
INTENSITIES = (1, 2, 3)
# emotion -> (action-unit profile at intensity 3, jaw amplitude factor, lip articulation factor, jaw offset)
EMOTION_PROFILES = {
    "neutral": ({}, 1.0, 1.0, 0.0),
    "happy": ({"lip_corner_pull": 0.9, "cheek_raise": 0.8, "lid_tighten": 0.3}, 1.05, 0.9, 0.0),
    "sad": ({"inner_brow_raise": 0.9, "brow_lower": 0.3, "lip_corner_depress": 0.8, "chin_raise": 0.25}, 0.7, 0.8, 0.0),
    "surprised": ({"inner_brow_raise": 1.0, "outer_brow_raise": 1.0, "upper_lid_raise": 0.9}, 1.25, 1.0, 0.04),
    "fear": ({"inner_brow_raise": 0.8, "brow_lower": 0.4, "upper_lid_raise": 0.8, "lip_stretch": 0.6}, 0.9, 1.0, 0.02),
    "disgusted": ({"nose_wrinkle": 0.9, "upper_lip_raise": 0.5, "brow_lower": 0.5, "lid_tighten": 0.4}, 0.85, 0.9, 0.0),
    "angry": ({"brow_lower": 1.0, "lid_tighten": 0.7, "lip_tighten": 0.5, "upper_lid_raise": 0.3}, 1.2, 1.1, 0.0),
    "contempt": ({"dimpler": 0.8, "lip_corner_pull": 0.25, "lid_tighten": 0.25, "brow_lower": 0.15}, 0.9, 0.9, 0.0),
}
N_ACTORS = 6
MOUTH_EMOTION_AUS = ("lip_corner_pull", "lip_corner_depress", "lip_stretch", "upper_lip_raise", "chin_raise",
                     "lip_tighten", "dimpler")


def actor_style(actor: int) -> dict:
    """Per-actor style: identity of the face, a gain per action unit, jaw gain, onset time, fluctuation."""
    rng = np.random.default_rng(1000 + actor)
    return {"identity": actor % 4, "au_gain": rng.uniform(0.7, 1.3, E), "jaw_gain": rng.uniform(0.85, 1.15),
            "onset": rng.uniform(0.15, 0.6), "wobble_hz": rng.uniform(0.2, 0.6), "wobble": rng.uniform(0.05, 0.2),
            "blink_every": rng.uniform(2.0, 4.5)}


def intensity_scale(intensity: int) -> float:
    return {1: 0.4, 2: 0.7, 3: 1.0}[int(intensity)]


def compose(lips: np.ndarray, jaw_open: np.ndarray, bilabial_share: np.ndarray, emotion: str, intensity: int,
            actor: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[T, E] expression and [T, 3] jaw pose: content motion modulated and overlaid by the emotion.

    ``bilabial_share`` [T] (0..1) is how much the bilabials dominate each frame; the emotion's jaw
    and lip changes are faded out there so the lips still close.
    """
    n = len(jaw_open)
    t = frame_times(n)
    st = actor_style(actor)
    profile, jaw_f, lip_f, jaw_off = EMOTION_PROFILES[emotion]
    k = intensity_scale(intensity) if emotion != "neutral" else 0.0
    free = 1.0 - bilabial_share
    jaw_gain = st["jaw_gain"] * (1 + (jaw_f - 1) * k)
    lip_gain = 1 + (lip_f - 1) * k
    jaw = jaw_open * jaw_gain
    expr = lips * (lip_gain * free + bilabial_share)[:, None]
    envelope = np.clip(t / st["onset"], 0, 1)
    envelope = envelope * envelope * (3 - 2 * envelope)
    phase = rng.uniform(0, 2 * np.pi)
    wobble = 1 + st["wobble"] * np.sin(2 * np.pi * st["wobble_hz"] * t + phase)
    prof = np.zeros(E)
    for name, w in profile.items():
        prof[_I[name]] = w
    emo = (k * prof * st["au_gain"])[None, :] * (envelope * wobble)[:, None]
    mouth = np.array([name in LIP_AUS or name in MOUTH_EMOTION_AUS for name in EXPR])
    emo[:, mouth] *= free[:, None]
    expr = expr + emo
    jaw = jaw + k * jaw_off * envelope * free
    # blinks: 150 ms, at actor-specific mean interval
    blink = np.zeros(n)
    tb = rng.uniform(0.3, st["blink_every"])
    while tb < t[-1] + 0.2:
        blink = np.maximum(blink, np.exp(-0.5 * ((t - tb) / 0.05) ** 2))
        tb += rng.uniform(0.6, 1.4) * st["blink_every"]
    expr[:, _I["eye_blink"]] = np.maximum(expr[:, _I["eye_blink"]], blink)
    jaw3 = np.zeros((n, 3))
    jaw3[:, 0] = jaw
    return expr.astype(np.float32), jaw3.astype(np.float32)


def bilabial_share(phones, n_frames: int) -> np.ndarray:
    """[T] fraction of the lip-channel dominance held by bilabials under generator A."""
    t = frame_times(n_frames)
    tot, bil = np.zeros(n_frames) + 1e-9, np.zeros(n_frames)
    for s, e, _p, v in _with_silence(phones, t[-1]):
        _, a_lip, tau = _dominance(v)
        d = a_lip * np.exp(-np.maximum(0.0, np.abs(t - (s + e) / 2) - (e - s) / 2) / tau)
        tot += d
        if v == "PBM":
            bil += d
    return bil / tot


def target_motion(phones, n_frames: int, emotion: str, intensity: int, actor: int, seed: int,
                  generator: str = "a") -> tuple[np.ndarray, np.ndarray]:
    """The generated ground truth for one (utterance, emotion, intensity, actor): ([T, E], [T, 3])."""
    rng = np.random.default_rng(seed)
    if generator == "a":
        lips, jaw = content_generator_a(phones, n_frames)
    else:
        lips, jaw = content_generator_b(phones, n_frames, rng)
    return compose(lips, jaw, bilabial_share(phones, n_frames), emotion, intensity, actor, rng)
