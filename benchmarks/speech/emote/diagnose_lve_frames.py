"""Where does lip vertex error come from? LVE split by frame class (round 6 diagnosis, issue 24 item 1).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/emote/diagnose_lve_frames.py CORPUS RUN SYSTEMS [SPLIT] [EVERY]

SYSTEMS: comma-separated sub-directories of RUN holding ``model`` (e.g. ``plain_w3_s1,regression_1000``);
SPLIT defaults to ``val`` (select on validation); EVERY (default 1) keeps every EVERY-th utterance. Same
inputs as ``evaluate.evaluate``: every utterance under all 8 emotions at intensity 3, actor ``index % 6``,
target seed ``index``. Every frame goes to exactly one class, in this order of priority (:func:`frame_classes`):

- ``closed``: the target's inner-lip opening is <= CLOSED_MM (what the closure metric counts as closed);
- ``bilabial``: otherwise, within a /p b m/ phone (synthesiser alignment) widened by +-2 frames;
- ``speech``: otherwise, inside any other phone that is not silence;
- ``silence``: the rest (pauses, before the first and after the last phone).

Printed per system and class: the share of frames, the mean per-frame LVE (max L2 over the lip-region
vertices, mm), its contribution to the overall LVE (share x mean; the contributions sum to the LVE), and
the mean signed inner-lip opening error (prediction - target, mm: > 0 the mouth is too open).
"""

import json
import sys

import numpy as np
import torch

from seqverse.speech.emote import motion as M
from seqverse.speech.emote.corpus import VISEMES, load_split
from seqverse.speech.emote.data import Geometry, full_sequence
from seqverse.speech.emote.evaluate import CLOSED_MM

CLASSES = ("closed", "bilabial", "speech", "silence")


def frame_classes(target_opening: np.ndarray, phones, widen: int = 2) -> np.ndarray:
    """[T] class index into CLASSES for every frame (see the module docstring for the definitions)."""
    n = len(target_opening)
    vis = M.frame_visemes(phones, n)
    t = M.frame_times(n)
    near_bilabial = np.zeros(n, bool)
    for s, e, _p, v in phones:
        if v != "PBM":
            continue
        idx = np.where((t >= s) & (t < e))[0]
        if len(idx) == 0:   # a phone shorter than a frame: the frame nearest its middle
            idx = [int(np.clip(round((s + e) / 2 * M.FPS - 0.5), 0, n - 1))]
        near_bilabial[max(idx[0] - widen, 0):min(idx[-1] + widen + 1, n)] = True
    cls = np.full(n, CLASSES.index("silence"))
    cls[vis != VISEMES.index("sil")] = CLASSES.index("speech")
    cls[near_bilabial] = CLASSES.index("bilabial")
    cls[target_opening <= CLOSED_MM] = CLASSES.index("closed")
    return cls


def main():
    from seqverse.speech.emote.model import from_pretrained
    from seqverse.speech.emote.train import mouth_opening, predict

    torch.set_num_threads(1)
    corpus, run, systems = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    split = sys.argv[4] if len(sys.argv) > 4 else "val"
    every = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    geo = Geometry()
    lips = tuple(int(i) for i in np.where(geo.face.lip_mask)[0])
    models = {s: from_pretrained(f"{run}/{s}/model") for s in systems}
    acc = {s: {c: {"lve": [], "dopen": []} for c in CLASSES} for s in systems}
    for ui, u in enumerate(load_split(corpus, split)[::every]):
        for emotion in M.EMOTIONS:
            s = full_sequence(u, emotion, 3, ui % M.N_ACTORS, seed=ui)
            n, ident = s["n_frames"], torch.tensor([s["identity"]])
            gt = torch.from_numpy(s["motion"])[None, :n]
            with torch.no_grad():
                op_t = mouth_opening(geo, gt, ident)[0].numpy()
                vt = geo.vertices(gt, ident, lips)[0]
            cls = frame_classes(op_t, u.phones)
            for name, m in models.items():
                pred = predict(m, s["mel"], M.EMOTIONS.index(emotion), 3, ui % M.N_ACTORS)[None, :n]
                with torch.no_grad():
                    lve = (geo.vertices(pred, ident, lips)[0] - vt).norm(dim=-1).amax(-1).numpy()
                    op_p = mouth_opening(geo, pred, ident)[0].numpy()
                for c, cname in enumerate(CLASSES):
                    acc[name][cname]["lve"].append(lve[cls == c])
                    acc[name][cname]["dopen"].append((op_p - op_t)[cls == c])
    out = {}
    print(f"{split}: {'system':22s} {'class':9s} {'share':>6s} {'LVE mm':>7s} {'contrib':>8s} {'open err mm':>11s}")
    for name in systems:
        total = sum(sum(len(x) for x in acc[name][c]["lve"]) for c in CLASSES)
        out[name] = {}
        for cname in CLASSES:
            lve = np.concatenate(acc[name][cname]["lve"])
            dopen = np.concatenate(acc[name][cname]["dopen"])
            share = len(lve) / total
            row = {"share": share, "lve_mm": float(lve.mean()) if len(lve) else 0.0,
                   "contribution_mm": share * float(lve.mean()) if len(lve) else 0.0,
                   "opening_error_mm": float(dopen.mean()) if len(dopen) else 0.0}
            out[name][cname] = row
            print(f"{split}: {name:22s} {cname:9s} {share:6.3f} {row['lve_mm']:7.2f} {row['contribution_mm']:8.2f} "
                  f"{row['opening_error_mm']:+11.2f}")
        print(f"{split}: {name:22s} {'all':9s} {1.0:6.3f} {sum(r['contribution_mm'] for r in out[name].values()):7.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
