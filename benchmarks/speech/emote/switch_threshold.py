"""Validation sweep of a closure-switch model's gate threshold (round 7b, issue 24).

    OMP_NUM_THREADS=1 python benchmarks/speech/emote/switch_threshold.py RUN NAME CORPUS T1,T2,... [SPLIT]
    OMP_NUM_THREADS=1 python benchmarks/speech/emote/switch_threshold.py --score RUN CORPUS SPLIT SYSTEM...

For each threshold T writes RUN/NAME_tT/model (the same weights, linked, with ``switch_threshold`` T in its
config.json) and its validation row RUN/val_NAME_tT.json (SPLIT val_ood, round 9: RUN/valood_NAME_tT.json), then prints LVE, closure (overall and worst
emotion) and emotion accuracy per threshold. The threshold is a decoding setting read on validation only.
"""

import json
import sys
from pathlib import Path

import torch

from seqverse.speech.emote.evaluate import evaluate


def threshold_copy(run: Path, name: str, t: float) -> str:
    src = run / name / "model"
    dst_name = f"{name}_t{t:g}"
    dst = run / dst_name / "model"
    if not dst.is_dir():
        dst.mkdir(parents=True)
        cfg = json.loads((src / "config.json").read_text())
        cfg["switch_threshold"] = t
        (dst / "config.json").write_text(json.dumps(cfg, indent=1))
        (dst / "model.safetensors").symlink_to((src / "model.safetensors").resolve())
    return dst_name


def split_row(run: Path, corpus: str, split: str, system: str) -> dict:
    """The system's row on a validation split, scored once and kept as RUN/<val|valood>_<system>.json."""
    out = run / f"{split.replace('_', '')}_{system}.json"
    if not out.is_file():
        out.write_text(json.dumps(evaluate(corpus, run, split, systems=[system], progress=False), indent=1))
    return json.loads(out.read_text())[0]


def main():
    torch.set_num_threads(1)
    run, name, corpus, thresholds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    split = sys.argv[5] if len(sys.argv) > 5 else "val"
    for t in (float(x) for x in thresholds.split(",")):
        sys_name = threshold_copy(run, name, t)
        r = split_row(run, corpus, split, sys_name)
        print(f"{sys_name}: lve {r['lve_mm']:.3f} closure {r['bilabial_closure']:.3f} "
              f"worst {r['closure_min_emotion']:.3f} emotion {r['emotion_acc']:.3f}", flush=True)


def score_main(run: Path, corpus: str, split: str, systems: list[str]):
    """``--score RUN CORPUS SPLIT SYSTEM...``: plain rows of systems without a gate (e.g. the regression peer)."""
    torch.set_num_threads(1)
    for system in systems:
        r = split_row(run, corpus, split, system)
        print(f"{system}: lve {r['lve_mm']:.3f} worst {r['closure_min_emotion']:.3f} emotion {r['emotion_acc']:.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--score":
        score_main(Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        main()
