"""A phone front end for EMOTE (issue 24, round 11; ours, beyond the paper).

EMOTE (Danecek et al. 2023, Sec. 3.2) reads audio through wav2vec 2.0, a speech model pre-trained on real
human speech, so its features describe *what is said* more than *which voice says it*. Our audio encoder is
trained here on log-mels of synthetic voices, and rounds 7-10 measured what that costs: the closure gate
learned on espeak and LPC-diphone voices does not fire on a synthesis family it never heard (MBROLA).

The pre-trained speech model a registry package ships here is CMU PocketSphinx's US-English acoustic model
(``pocketsphinx`` wheel; continuous-density HMMs trained on real recorded speech). Its phone-loop decoding
(``allphone`` with the phone trigram model it ships) gives each 10 ms frame a phone label; the label track,
one-hot, is appended to the log-mel columns the audio encoder reads (``EMOTEConfig.phone_frontend``). The
frame rate is the log-mel's (100 fps, 4 rows per 25 fps motion frame), so rows line up one to one.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

# ARPAbet as the CMU dictionary spells it (39 phones), then silence and every filler (+SPN+, +NSN+, ...)
ARPABET = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W "
           "Y Z ZH").split()
PHONES = tuple(ARPABET) + ("SIL", "NOISE")
SIL = PHONES.index("SIL")
NOISE = PHONES.index("NOISE")
N_PHONES = len(PHONES)


@lru_cache(maxsize=1)
def recogniser():
    """One PocketSphinx phone-loop decoder per process (loading the model takes ~0.3 s)."""
    from pocketsphinx import Decoder, get_model_path

    phone_lm = os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin")
    # wide beams: a phone loop prunes badly with the word-decoding defaults; lw/pip as CMU's allphone example
    return Decoder(allphone=phone_lm, beam=1e-20, pbeam=1e-20, lw=2.0, pip=0.1, loglevel="ERROR")


def phone_index(label: str) -> int:
    """The :data:`PHONES` index of a PocketSphinx segment label (fillers such as ``+SPN+`` are NOISE)."""
    if label in ARPABET:
        return ARPABET.index(label)
    return SIL if label in ("SIL", "<sil>", "<s>", "</s>") else NOISE


def phone_segments(audio: np.ndarray) -> list[tuple[str, int, int]]:
    """[(label, first frame, last frame)] of 16 kHz float audio, frames of 10 ms, by phone-loop decoding."""
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    d = recogniser()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return [(s.word, int(s.start_frame), int(s.end_frame)) for s in d.seg()]


def phone_track(audio: np.ndarray, n_rows: int) -> np.ndarray:
    """int8 [n_rows]: the recognised phone of each 10 ms row (SIL where nothing was decoded)."""
    track = np.full(n_rows, SIL, np.int8)
    for label, first, last in phone_segments(audio):
        track[max(first, 0):min(last + 1, n_rows)] = phone_index(label)
    return track


def one_hot(track: np.ndarray) -> np.ndarray:
    """float32 [len(track), N_PHONES]."""
    return np.eye(N_PHONES, dtype=np.float32)[np.asarray(track, np.int64)]
