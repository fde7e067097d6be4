"""Round 3 (issue 24): equal step budgets, a FLINT with less temporal compression, the lip-closure loss and
audio augmentation for unseen voices. One process, every step resumable (rerun the same command):

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/emote/run_round3.py [RUN] [JUDGES] [SYSTEMS] [aug|plain] [S1 S2] [W]

(W: the closure-loss weight, default LOSS_WEIGHTS["closure"] = 1.)

RUN (default runs/emote/r4) links the judges (lip reader, lip judge, emotion net) of JUDGES (default
runs/emote/final) and trains, in order:
  flint_q1: FLINT with quant_factor 1 (2 frames per latent step instead of 4) + parameter loss, 2,000 x 16;
  then every system with S1 + S2 = 1,000 optimizer steps x 8 (regression: 1,000 vertex-loss steps), all on
  VTLP + frequency-mask augmented audio (data.augment_mel):
  regression, no_prior_closure, emote_closure, emote, no_prior, no_exchange_closure;
after each, the system is scored on the validation voices (RUN/val_<system>.json).
Selection rule (written before the runs): among the EMOTE variants, the highest validation closure of the
worst emotion; within 0.05 of it, the lowest validation LVE.

A first probe (runs/emote/r3, no augmentation, 300 + 200 steps, FLINT q1 500 steps): regression val LVE
4.65 mm / worst-emotion closure 0.03; no_prior_closure 5.67 mm / 0.50 (overall closure 0.25 -> 0.78).
"""

import json
import sys
from pathlib import Path

import torch

from seqverse.speech.emote import train as T
from seqverse.speech.emote.evaluate import evaluate

CORPUS = "runs/emote/corpus"
RUN = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/emote/r4")
JUDGES = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/emote/final")
SYSTEMS = sys.argv[3].split(",") if len(sys.argv) > 3 else [
    "regression", "no_prior_closure", "emote_closure", "emote", "no_prior", "no_exchange_closure"]
AUGMENT = (sys.argv[4] if len(sys.argv) > 4 else "aug") == "aug"
S1, S2 = (int(x) for x in sys.argv[5:7]) if len(sys.argv) > 6 else (600, 400)
CLOSURE_WEIGHT = float(sys.argv[7]) if len(sys.argv) > 7 else None
FLINT_STEPS, BATCH = 2000, 8


def validate(variant: str):
    out = RUN / f"val_{variant}.json"
    if not out.is_file():
        out.write_text(json.dumps(evaluate(CORPUS, RUN, "val", systems=[variant], progress=False), indent=1))
    r = json.loads(out.read_text())[0]
    print(variant, "val", {k: round(v, 3) for k, v in r.items() if isinstance(v, float)}, flush=True)


def main():
    torch.set_num_threads(1)
    RUN.mkdir(parents=True, exist_ok=True)
    for name in ("lip_reader", "lip_judge", "emotion_net"):
        if not (RUN / name).exists():
            (RUN / name).symlink_to((JUDGES / name).resolve())
    print(T.train_flint(CORPUS, RUN / "flint_q1", FLINT_STEPS, batch_size=16, param_weight=10.0, quant_factor=1,
                        progress=False), flush=True)
    for variant in SYSTEMS:
        print(variant, T.train_emote(CORPUS, RUN / variant, RUN / "flint_q1" / "model", RUN / "lip_reader",
                                     RUN / "emotion_net", variant, S1, S2, batch_size=BATCH, progress=False,
                                     augment=AUGMENT, closure_weight=CLOSURE_WEIGHT), flush=True)
        validate(variant)


if __name__ == "__main__":
    main()
