"""EMOTE side by side with its baselines and ablations on held-out voices and sentences.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/emote/bench_emote.py [CORPUS] [RUN] [EVERY] [SYSTEMS]

(defaults runs/emote/corpus, runs/emote/run; build them with `seqverse-speech emote corpus` and
benchmarks/speech/emote/run_training.py or `seqverse-speech emote train`). Writes results.json and
results.md beside this file. EVERY=3 scores every third test utterance (30 of 90, all three
held-out voices), 8 emotions each, which the README's table uses (CPU budget). SYSTEMS (comma-separated)
re-scores only those and keeps the other rows of results.json (systems outside ORDER, e.g. round 7's,
follow ORDER's rows in the order given).
"""

import json
import sys
from pathlib import Path

import torch

from seqverse.speech.emote.evaluate import evaluate
from seqverse.speech.emote.motion import EMOTIONS

HERE = Path(__file__).parent
COLUMNS = ["system", "lve_mm", "bilabial_closure", "closure_min_emotion", "emotion_acc", "lipread_acc",
           "lve_spread_mm", "lipread_agree"]


def markdown(rows) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        out.append("| " + " | ".join(r[c] if c == "system" else f"{r[c]:.3f}" for c in COLUMNS) + " |")
    out += ["", "Bilabial closure by emotion (held-out voices):", "",
            "| system | " + " | ".join(EMOTIONS) + " |", "|---|" + "---|" * len(EMOTIONS)]
    for r in rows:
        out.append(f"| {r['system']} | " + " | ".join(f"{r['closure_by_emotion'][e]:.2f}" for e in EMOTIONS) + " |")
    return "\n".join(out) + "\n"


ORDER = ["static", "mean_motion", "viseme_rules_ceiling", "regression", "regression_1000", "no_prior", "no_exchange",
         "emote", "no_prior_closure", "no_exchange_closure", "emote_closure", "no_prior_closure_w3",
         "no_prior_closure_w3_1000", "no_prior_closure_w3_1000_s1"]


def main():
    torch.set_num_threads(1)
    corpus = sys.argv[1] if len(sys.argv) > 1 else "runs/emote/corpus"
    run = sys.argv[2] if len(sys.argv) > 2 else "runs/emote/run"
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    systems = sys.argv[4].split(",") if len(sys.argv) > 4 else ORDER
    out = HERE / "results.json"
    rows = {r["system"]: r for r in json.loads(out.read_text())} if out.is_file() and len(systems) < len(ORDER) else {}
    present = [s for s in systems if s in ORDER[:3] or (Path(run) / s / "model").is_dir()]
    missing = sorted(set(systems) - set(present))
    if missing:
        raise SystemExit(f"bench_emote.py: no model directory {run}/<system>/model for: {', '.join(missing)}")
    for r in evaluate(corpus, run, "test", systems=present, progress=False, every=every):
        rows[r["system"]] = r
    ordered = [rows[s] for s in ORDER if s in rows] + [r for s, r in rows.items() if s not in ORDER]
    out.write_text(json.dumps(ordered, indent=1))
    (HERE / "results.md").write_text(markdown(ordered))
    print(markdown(ordered))


if __name__ == "__main__":
    main()
