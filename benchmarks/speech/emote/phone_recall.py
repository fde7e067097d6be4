"""How well the phone front end (round 11, emote/phones.py) hears bilabials, per voice, with no model involved.

    python benchmarks/speech/emote/phone_recall.py CORPUS SPLIT [EVERY]     # e.g. runs/emote/corpus_wide val_ood

Reads the corpus's recognised phone tracks (`emote corpus --phones`) and the synthesiser's own phone times.
Recall: the share of true /p b m/ phones with a recognised P/B/M row within 30 ms of them; precision: the share
of recognised P/B/M segments within 30 ms of a true one. Prints a markdown table, one row per voice.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

from seqverse.speech.emote.corpus import load_split
from seqverse.speech.emote.phones import phone_index

BILABIAL_ROWS = [phone_index(p) for p in ("P", "B", "M")]
SLACK = 0.03   # seconds
ROW = 0.01     # seconds per track row


def segments(mask: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of True rows."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return [(a * ROW, b * ROW) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def main():
    corpus, split = sys.argv[1], sys.argv[2]
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    counts = defaultdict(lambda: np.zeros(4, int))   # true, found, recognised, right
    for u in load_split(corpus, split)[::every]:
        if u.track is None:
            sys.exit(f"{corpus}: no phone tracks (run `emote corpus -o {corpus} --phones`)")
        truth = [(s, e) for s, e, _, viseme in u.phones if viseme == "PBM"]
        heard = segments(np.isin(u.track, BILABIAL_ROWS))
        near = [[hs < e + SLACK and he > s - SLACK for hs, he in heard] for s, e in truth]
        c = counts[u.voice]
        c += [len(truth), sum(any(row) for row in near), len(heard),
              sum(any(near[i][j] for i in range(len(truth))) for j in range(len(heard)))]
    print(f"{split} (every {every}): recognised P/B/M within {SLACK * 1000:.0f} ms of the synthesiser's /p b m/\n")
    print("| voice | bilabials | recall | recognised | precision |\n|---|---|---|---|---|")
    for voice, (n, found, m, right) in sorted(counts.items()):
        print(f"| {voice} | {n} | {found / max(n, 1):.2f} | {m} | {right / max(m, 1):.2f} |")
    n, found, m, right = sum(counts.values())
    print(f"| all | {n} | {found / max(n, 1):.2f} | {m} | {right / max(m, 1):.2f} |")


if __name__ == "__main__":
    main()
