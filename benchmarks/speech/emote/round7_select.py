"""Round 7c/7d (and 8-11) selection (issue 24), read from the validation rows in RUN (val_<system>.json; round 9:
the out-of-family split, valood_<system>.json, seeds 4-7 of candidate and peer; rounds 10 and 11 likewise; round
11 has two peers plus round 9's recorded regression row, and a candidate must beat each):

    python benchmarks/speech/emote/round7_select.py [RUN]      # default runs/emote/r11

For each candidate configuration (four seeds) and its peer: the gate threshold (the largest of 0.5-0.05 at which
the seed-mean worst-emotion closure is >= 0.90), the seed means there, whether it qualifies (seed-mean emotion
accuracy >= and seed-mean LVE < the peer's), and its finalist (the lowest-LVE seed meeting closure and emotion
itself). Prints a markdown table and the decision; writes nothing.
"""

import json
import sys
from pathlib import Path

import numpy as np

RUN = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/emote/r11")
THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.1, 0.05)
SEEDS = ("", "_s1", "_s2", "_s3")
ROUNDS = {"7c": ("reg4000", ("sw_4000", "swl_4000")), "7d": ("reg2000", ("swl_2000",)), "8": ("reg2000", ("swp_2000",)),
          "9": ("reg2000", ("swp_2000",)), "10": ("reg2000", ("swpa_2000",)),
          "11": (("reg2000", "regp2000"), ("swpp_2000",))}
ROUND_SEEDS = {"9": ("_s4", "_s5", "_s6", "_s7"), "10": ("_s4", "_s5", "_s6", "_s7"), "11": ("_s4", "_s5", "_s6", "_s7")}
ROUND_SPLIT = {"9": "valood", "10": "valood", "11": "valood"}
OWN_DECISION = ("8", "9", "10", "11")   # rounds decided on their own, after an earlier round's test
# peer seed-means recorded on another machine, kept as bars a later round must also clear: (name, LVE mm, emotion acc)
RECORDED_PEERS = {"11": (("reg2000, round 9 (recorded)", 5.458, 0.849),)}


def row(system: str, prefix: str = "val") -> dict:
    return json.loads((RUN / f"{prefix}_{system}.json").read_text())[0]


def seed_rows(name: str, threshold: float | None = None, seeds=SEEDS, prefix: str = "val") -> list[dict]:
    return [row(f"{name}{s}" + (f"_t{threshold:g}" if threshold is not None else ""), prefix) for s in seeds]


def lves(rows) -> str:
    return " / ".join(f"{r['lve_mm']:.3f}" for r in rows)


def mean(rows, key) -> float:
    return float(np.mean([r[key] for r in rows]))


def main():
    print("| round | configuration | threshold | LVE mm (per seed) | mean | worst-emotion closure mean | emotion acc mean | qualifies |")
    print("|---|---|---|---|---|---|---|---|")
    best, decisions, label = None, [], "7c/7d"
    for rnd, (peer, candidates) in ROUNDS.items():
        seeds, prefix = ROUND_SEEDS.get(rnd, SEEDS), ROUND_SPLIT.get(rnd, "val")
        if rnd in OWN_DECISION:   # a round of its own (after an earlier round's test): its own decision
            decisions.append((label, best))
            best, label = None, rnd
        peers = (peer,) if isinstance(peer, str) else peer
        if not all((RUN / f"{prefix}_{p}{s}.json").is_file() for p in peers for s in seeds):
            print(f"| {rnd} | {', '.join(peers)} (peer) | (peer rows missing: round not read in this RUN) | | | | | |")
            continue
        bars = list(RECORDED_PEERS.get(rnd, ()))
        for p in peers:
            peer_rows = seed_rows(p, None, seeds, prefix)
            bars.append((p, mean(peer_rows, "lve_mm"), mean(peer_rows, "emotion_acc")))
            print(f"| {rnd} | {p} (peer) | | {lves(peer_rows)} | {bars[-1][1]:.3f} | "
                  f"{mean(peer_rows, 'closure_min_emotion'):.3f} | {bars[-1][2]:.3f} | |")
        for name, lve, emo in RECORDED_PEERS.get(rnd, ()):
            print(f"| {rnd} | {name} (peer) | | | {lve:.3f} | | {emo:.3f} | |")
        p_lve, p_emo = min(b[1] for b in bars), max(b[2] for b in bars)   # the candidate must beat every peer
        peer = " and ".join(b[0] for b in bars)
        for name in candidates:
            if not all((RUN / f"{prefix}_{name}{s}_t{t:g}.json").is_file() for s in seeds for t in THRESHOLDS):
                print(f"| {rnd} | {name} | (runs or threshold rows missing) | | | | | |")
                continue
            t = next((t for t in THRESHOLDS if mean(seed_rows(name, t, seeds, prefix), "closure_min_emotion") >= 0.90), None)
            rows = seed_rows(name, t if t is not None else 0.05, seeds, prefix)
            lve, emo = mean(rows, "lve_mm"), mean(rows, "emotion_acc")
            ok = t is not None and emo >= p_emo and lve < p_lve
            print(f"| {rnd} | {name} | {t if t is not None else 'none (0.05 shown)'} | "
                  f"{lves(rows)} | {lve:.3f} | {mean(rows, 'closure_min_emotion'):.3f} | "
                  f"{emo:.3f} | {'yes' if ok else 'no'} |")
            if ok and (best is None or lve < best[1]):
                eligible = [(r["lve_mm"], f"{name}{s}") for r, s in zip(rows, seeds)
                            if r["closure_min_emotion"] >= 0.90 and r["emotion_acc"] >= p_emo]
                best = (name, lve, t, min(eligible) if eligible else None, peer)
    decisions.append((label, best))
    print()
    for rnd, best in decisions:
        if best is None:
            print(f"round {rnd}: no configuration qualifies: test is not read")
            continue
        name, lve, t, fin, peer = best
        print(f"round {rnd}: winner {name} (seed-mean LVE {lve:.3f}) at threshold {t}; finalist {fin[1]} (validation LVE {fin[0]:.3f}); "
              f"peer {peer}")


if __name__ == "__main__":
    main()
