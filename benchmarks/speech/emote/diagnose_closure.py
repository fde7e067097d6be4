"""Why bilabials do not close: the ground truth's own closure and per-phone opening, beside the models'.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/emote/diagnose_closure.py CORPUS RUN SYSTEMS [EVERY]

For every /p b m/ phone of the test split (every EVERY-th utterance, default 9; all 8 emotions at
intensity 3, actor index % 6, as bench_emote.py) it takes the smallest inner-lip opening inside the
phone (and within +-2 frames of it), for the generated target itself and for each system in SYSTEMS
(comma-separated run sub-directories). Prints the closure rate at CLOSED_MM, the rate with the +-2-frame
tolerance (a timing offset would show as a large gain), the 10/50/90th percentiles of the per-phone
minimum, and the median opening over speech frames (is the mouth over- or under-opened overall).
"""

import sys

import numpy as np
import torch

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.corpus import load_split
from seqverse.speech.emote.data import Geometry, full_sequence
from seqverse.speech.emote.evaluate import CLOSED_MM
from seqverse.speech.emote.model import from_pretrained
from seqverse.speech.emote.train import mouth_opening, predict


def main():
    torch.set_num_threads(1)
    corpus, run, systems = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    every = int(sys.argv[4]) if len(sys.argv) > 4 else 9
    geo = Geometry()
    models = {s: from_pretrained(f"{run}/{s}/model") for s in systems}
    per_phone = {k: [] for k in ["target", *systems]}
    speech_open = {k: [] for k in per_phone}
    for ui, u in enumerate(load_split(corpus, "test")[::every]):
        for emotion in M.EMOTIONS:
            s = full_sequence(u, emotion, 3, ui % M.N_ACTORS, seed=ui)
            n, ident = s["n_frames"], torch.tensor([s["identity"]])
            motions = {"target": torch.from_numpy(s["motion"])}
            for k, m in models.items():
                motions[k] = predict(m, s["mel"], M.EMOTIONS.index(emotion), 3, ui % M.N_ACTORS)
            t = M.frame_times(n)
            speech = M.frame_visemes(u.phones, n) > 1
            for k, motion in motions.items():
                with torch.no_grad():
                    op = mouth_opening(geo, motion[None, :n], ident)[0].numpy()
                speech_open[k].append(np.median(op[speech]))
                for start, end, _p, v in u.phones:
                    idx = np.where((t >= start) & (t < end))[0]
                    if v != "PBM" or len(idx) == 0:
                        continue
                    near = np.arange(max(idx[0] - 2, 0), min(idx[-1] + 3, n))
                    per_phone[k].append((op[idx].min(), op[near].min()))
    print(f"{'system':22s} closure  +-2 frames  min opening in phone p10/p50/p90 (mm)  median speech opening")
    for k, rows in per_phone.items():
        a = np.array(rows)
        p = np.percentile(a[:, 0], [10, 50, 90])
        print(f"{k:22s} {(a[:, 0] <= CLOSED_MM).mean():7.3f}  {(a[:, 1] <= CLOSED_MM).mean():10.3f}  "
              f"{p[0]:6.2f} {p[1]:6.2f} {p[2]:6.2f}{'':18s}{np.median(speech_open[k]):6.2f}   (n={len(a)})")


if __name__ == "__main__":
    main()
