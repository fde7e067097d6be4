"""Is the simulated searcher's behaviour learnable, and how much sequence score can any predictor get?

    python benchmarks/vision/oat/diagnose_synthetic.py [--oat runs/oat/synth_oat/best] [--displays 40]

1. Ceiling of a PERFECT model of the simulator: on fresh displays drawn exactly as make-displays
   draws them (layouts, products, targets; seed 1000, never used for training or testing), draw 100
   scanpaths from the simulator itself, keep the minimum-Bayes-risk one (decode.mbr_index), and score
   it against 4 further independent simulated people, as the benchmark scores OAT. Also: one
   simulated person against the others (inter-person), and the target-RGB baseline's rule (fixate
   the target first) on the same displays.
2. Does the object CNN carry the colour the target-RGB baseline uses? A ridge probe from the trained
   (and the randomly initialised) ObjectCNN's features to each crop's mean RGB, R^2 on held-out crops.
3. The learning curve: validation sequence score / delta per epoch from the run's metrics.jsonl.

Writes results/diagnose_synthetic.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from seqverse.vision.oat import synth
from seqverse.vision.oat.decode import mbr_index
from seqverse.vision.oat.metrics import behavioural_delta, mean_behaviour, sequence_score

RESULTS = Path(__file__).resolve().parent / "results"


def simulator_ceiling(n_displays: int, draws: int = 100, people: int = 4, seed: int = 1000) -> dict:
    rng = np.random.default_rng(seed)
    products = synth.make_products(60, 0)  # the corpus's products (seed 0), fresh layouts and targets
    ss_mbr, ss_inter, ss_first, pred, truth, tg_p, tg_t = [], [], [], [], [], [], []
    for k in range(n_displays):
        boxes = synth.layout_geometry(k, rng)
        placed = [products[p] for p in rng.permutation(60)[: len(boxes)]]
        t = int(rng.integers(len(boxes)))
        sims = [synth.simulate_search(boxes, placed, t, rng)[0] for _ in range(draws)]
        humans = [synth.simulate_search(boxes, placed, t, rng)[0] for _ in range(people)]
        best = sims[mbr_index(sims)]
        ss_mbr += [sequence_score(best, h) for h in humans]
        ss_first += [sequence_score([t], h) for h in humans]
        ss_inter += [sequence_score(a, b) for i, a in enumerate(humans) for j, b in enumerate(humans) if i != j]
        pred.append(best)
        tg_p.append(t)
        truth += humans
        tg_t += [t] * people
    delta = behavioural_delta(mean_behaviour(pred, tg_p), mean_behaviour(truth, tg_t))
    return {"displays": n_displays, "perfect_model_mbr_sequence_score": float(np.mean(ss_mbr)),
            "perfect_model_mbr_delta": delta, "inter_person_sequence_score": float(np.mean(ss_inter)),
            "target_first_sequence_score": float(np.mean(ss_first)),
            "human_mean_length": float(np.mean([len(h) for h in truth]))}


def colour_probe(oat_dir: str, synth_dir: str, limit: int = 40) -> dict:
    from seqverse.vision.oat.displays import load_displays
    from seqverse.vision.oat.model import OAT

    model = OAT.from_pretrained(oat_dir)
    c = model.config
    displays = load_displays(Path(synth_dir) / "valid.json", (c.crop_height, c.crop_width))[:limit]
    seen, crops = set(), []
    for d in displays:  # each layout's crops once
        if d.image_path not in seen:
            seen.add(d.image_path)
            crops.append(d.crops)
    crops = np.concatenate(crops)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    y = crops.reshape(len(crops), -1, 3).mean(1) / 255
    out = {"crops": len(crops)}
    torch.manual_seed(0)
    for name, m in (("trained", model), ("random_init", OAT(c, position_table=model.position_table))):
        with torch.no_grad():
            f = m.cnn(x).numpy()
        idx = np.random.default_rng(0).permutation(len(f))
        tr, te = idx[: len(f) * 2 // 3], idx[len(f) * 2 // 3 :]
        f1 = np.c_[f, np.ones(len(f))]
        w = np.linalg.solve(f1[tr].T @ f1[tr] + 1e-2 * np.eye(f1.shape[1]), f1[tr].T @ y[tr])
        resid = ((f1[te] @ w - y[te]) ** 2).sum(0)
        out[f"{name}_mean_rgb_r2"] = float(np.mean(1 - resid / ((y[te] - y[te].mean(0)) ** 2).sum(0)))
    return out


def learning_curve(run: str) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [{k: r[k] for k in ("step", "valid_sequence_score", "valid_delta", "valid_length")} for r in rows
            if "valid_delta" in r]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oat", default="runs/oat/synth_oat/best", help="synthetic OAT checkpoint")
    parser.add_argument("--synth", default="runs/oat/synth", help="make-displays folder")
    parser.add_argument("--displays", type=int, default=40, help="fresh displays for the ceiling")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    out = {"ceiling": simulator_ceiling(args.displays)}
    print(json.dumps(out["ceiling"], indent=1), flush=True)
    out["colour_probe"] = colour_probe(args.oat, args.synth)
    print(json.dumps(out["colour_probe"], indent=1), flush=True)
    out["learning_curve"] = learning_curve(str(Path(args.oat).parent))
    out["seconds"] = round(time.time() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "diagnose_synthetic.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
