"""Bilabial closure per voice and emotion: where the validation -> held-out-voice gap comes from.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/speech/emote/closure_by_voice.py CORPUS SPLIT [MODEL_DIR] [EVERY]

MODEL_DIR defaults to the shipped default (seqverse/speech/emote/assets/emote). Same protocol as
bench_emote.py / evaluate.py (every EVERY-th utterance of SPLIT, default 1 for val and 3 for test; all 8
emotions at intensity 3, actor index % 6, target seed index): for each voice, the closure rate (per-phone
minimum of the inner-lip opening <= CLOSED_MM at the phone, as evaluate.bilabial_closure), the worst
emotion's rate, the median per-phone minimum opening (mm) and, as a measure of how far the voice's
audio is from the training voices *after* the encoder's own per-utterance mean/variance normalisation,
the distance of the voice's mean normalised log-mel spectrum from the nearest training voice's (in units
of the training voices' median pairwise distance).
"""

import sys
from collections import defaultdict

import numpy as np
import torch

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.api import DEFAULT_MODEL
from seqverse.speech.emote.corpus import load_split
from seqverse.speech.emote.data import Geometry, full_sequence
from seqverse.speech.emote.evaluate import bilabial_closure
from seqverse.speech.emote.model import from_pretrained
from seqverse.speech.emote.train import mouth_opening, predict


def voice_profiles(utts) -> dict:
    """voice -> mean over its utterances of the per-utterance normalised log-mel, as the AudioEncoder sees it."""
    acc = defaultdict(list)
    for u in utts:
        mel = u.mel
        z = (mel - mel.mean(0)) / (mel.std(0) + 1e-3)
        # a spectral shape that survives per-band normalisation: the band-to-band correlation structure,
        # summarised by the mean of z over frames whose energy is above the utterance median
        energy = mel.mean(1)
        acc[u.voice].append(z[energy > np.median(energy)].mean(0))
    return {v: np.mean(a, 0) for v, a in acc.items()}


def main():
    torch.set_num_threads(1)
    corpus, split = sys.argv[1], sys.argv[2]
    model_dir = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else str(DEFAULT_MODEL)
    every = int(sys.argv[4]) if len(sys.argv) > 4 else (3 if split == "test" else 1)
    geo, model = Geometry(), from_pretrained(model_dir)
    utts = load_split(corpus, split)[::every]
    train_prof = voice_profiles(load_split(corpus, "train"))
    tp = np.stack(list(train_prof.values()))
    pair = np.linalg.norm(tp[:, None] - tp[None], axis=-1)
    scale = float(np.median(pair[np.triu_indices(len(tp), 1)]))
    prof = voice_profiles(utts)
    stats = defaultdict(lambda: {e: [0, 0] for e in M.EMOTIONS})
    mins = defaultdict(list)
    for ui, u in enumerate(utts):
        actor = ui % M.N_ACTORS
        for emotion in M.EMOTIONS:
            s = full_sequence(u, emotion, 3, actor, seed=ui)
            n, ident = s["n_frames"], torch.tensor([s["identity"]])
            pred = predict(model, s["mel"], M.EMOTIONS.index(emotion), 3, actor)
            with torch.no_grad():
                op = mouth_opening(geo, pred[None, :n], ident)[0].numpy()
            c, b = bilabial_closure(op, u.phones)
            stats[u.voice][emotion][0] += c
            stats[u.voice][emotion][1] += b
            t = M.frame_times(n)
            for start, end, _p, v in u.phones:
                idx = np.where((t >= start) & (t < end))[0]
                if v == "PBM" and len(idx):
                    mins[u.voice].append(op[idx].min())
    print(f"model {model_dir}, split {split}, every {every}")
    print(f"{'voice':16s} closure  worst-emotion (which)   median min opening mm   audio distance to nearest train voice")
    for voice in sorted(stats):
        per = {e: c / max(b, 1) for e, (c, b) in stats[voice].items()}
        tot = sum(c for c, _ in stats[voice].values()) / max(sum(b for _, b in stats[voice].values()), 1)
        worst = min(per, key=per.get)
        dist = float(np.linalg.norm(tp - prof[voice], axis=-1).min()) / scale
        print(f"{voice:16s} {tot:7.3f}  {per[worst]:6.3f} ({worst:10s})  {np.median(mins[voice]):8.2f}"
              f"{'':16s}{dist:6.2f}", flush=True)


if __name__ == "__main__":
    main()
