"""Generated motion: bilabials close under every emotion, the two coarticulation generators differ, emotions show."""

import numpy as np
import pytest

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.corpus import phone_to_viseme
from seqverse.speech.emote.evaluate import CLOSED_MM, bilabial_closure
from seqverse.speech.emote.face import default_face

# "map a bomb": timings in seconds, as a synthesiser reports them
PHONES = [(0.1, 0.18, "m", "PBM"), (0.18, 0.33, "ae", "AA"), (0.33, 0.41, "p", "PBM"), (0.41, 0.48, "ax", "AH"),
          (0.48, 0.55, "b", "PBM"), (0.55, 0.72, "aa", "AA"), (0.72, 0.80, "m", "PBM")]


@pytest.mark.parametrize("emotion", M.EMOTIONS)
def test_generator_a_closes_bilabials_for_every_emotion(emotion):
    face = default_face()
    expr, jaw = M.target_motion(PHONES, 25, emotion, 3, actor=2, seed=0)
    opening = face.mouth_opening(face.vertices(expr, jaw, M.actor_style(2)["identity"]))
    assert bilabial_closure(opening, PHONES) == (4, 4)
    assert opening.max() > CLOSED_MM + 5    # and it opens on the vowels


def test_generators_differ_and_emotion_changes_upper_face():
    lips_a, jaw_a = M.content_generator_a(PHONES, 25)
    lips_b, jaw_b = M.content_generator_b(PHONES, 25, np.random.default_rng(0))
    assert np.abs(jaw_a - jaw_b).mean() > 0.01
    neutral, _ = M.target_motion(PHONES, 25, "neutral", 3, 0, 0)
    angry, _ = M.target_motion(PHONES, 25, "angry", 3, 0, 0)
    weak, _ = M.target_motion(PHONES, 25, "angry", 1, 0, 0)
    brow = M.EXPR.index("brow_lower")
    assert angry[10:, brow].mean() > weak[10:, brow].mean() > neutral[10:, brow].mean() + 0.1


def test_closure_metric_counts_open_bilabials():
    opening = np.full(25, 10.0)
    opening[3] = 1.0                    # only the first /m/ (frames 2-4) closes
    assert bilabial_closure(opening, PHONES) == (1, 4)


def test_phone_mapping():
    assert phone_to_viseme("m", "festival") == "PBM" and phone_to_viseme("uw", "festival") == "OO"
    assert phone_to_viseme("b", "espeak") == "PBM" and phone_to_viseme("aI", "espeak") == "AA"
    assert phone_to_viseme("_:", "espeak") == "sil"
