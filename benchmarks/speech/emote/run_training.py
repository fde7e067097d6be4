"""Train the EMOTE pipeline in two lanes (two processes share the work; each step resumes when rerun).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/emote/run_training.py a &   # FLINT, EMOTE, EMOTE w/o exchange
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/emote/run_training.py b &   # judges, regression, w/o prior

Budget used for the README numbers (CPU shared by six jobs): FLINT 300 steps x 16, judges 300 x 16 each,
every EMOTE variant 300 stage-1 + 200 stage-2 steps x 8 (the regression baseline 500 vertex-loss steps).
"""

import sys
import time
from pathlib import Path

import torch

from seqverse.speech.emote import train as T

CORPUS, RUN = "runs/emote/corpus", Path("runs/emote/run")
FLINT_STEPS, JUDGE_STEPS, S1, S2, BATCH = 300, 300, 300, 200, 8


def wait_for(path: Path):
    while not (path / "model" / "model.safetensors").is_file():
        time.sleep(20)


def main(lane: str):
    torch.set_num_threads(1)
    if lane == "a":
        print(T.train_flint(CORPUS, RUN / "flint", FLINT_STEPS, batch_size=16, progress=False), flush=True)
        wait_for(RUN / "lip_reader")
        wait_for(RUN / "emotion_net")
        for v in ("emote", "no_exchange"):
            print(v, T.train_emote(CORPUS, RUN / v, RUN / "flint" / "model", RUN / "lip_reader", RUN / "emotion_net", v,
                                   S1, S2, batch_size=BATCH, progress=False), flush=True)
    else:
        print(T.train_lipreader(CORPUS, RUN / "lip_reader", "conv", JUDGE_STEPS, batch_size=16, progress=False), flush=True)
        print(T.train_emotion_classifier(CORPUS, RUN / "emotion_net", JUDGE_STEPS, batch_size=16, progress=False), flush=True)
        print(T.train_lipreader(CORPUS, RUN / "lip_judge", "gru", JUDGE_STEPS, batch_size=16, seed=100, progress=False), flush=True)
        wait_for(RUN / "flint")
        for v in ("regression", "no_prior"):
            print(v, T.train_emote(CORPUS, RUN / v, RUN / "flint" / "model", RUN / "lip_reader", RUN / "emotion_net", v,
                                   S1, S2, batch_size=BATCH, progress=False), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
