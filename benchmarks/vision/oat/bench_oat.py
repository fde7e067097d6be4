"""OAT against its baselines, side by side, on held-out displays (JSON + markdown in benchmarks/vision/oat/results/).

    # synthetic (simulated searcher): held-out layouts and held-out targets
    python benchmarks/vision/oat/bench_oat.py synthetic --synth runs/oat/synth2 --oat runs/oat/synth_oat_big/best \
        --pixel runs/oat/synth_pixel/best --samples 20
    # human scanpaths (layout-only), held-out collages (human.py's fixed split), inter-human ceiling
    python benchmarks/vision/oat/bench_oat.py human --oat runs/oat/human_oat/best --samples 100
    # ... with the checkpoint's landing model (landing.json) and the decoding chosen with it
    python benchmarks/vision/oat/bench_oat.py human --oat runs/oat/human_oat/best --samples 100 --landing

The row "OAT (<rule>; chosen on validation)" uses the one decoding that select_decoding.py picked on
the validation displays (results/decoding_<which>.json); greedy and the mean over samples stay as
the official code reports them. Every system is scored by the same code (seqverse.vision.oat.predict.score_scanpaths) on the same
displays. "OAT (random init)" is the same network untrained: the ablation of everything learned.
Baselines fixate objects in their order until they reach the target. Each test set is evaluated
once per final model; the models were selected on validation only (train's early stopping).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seqverse.vision.oat.baselines import baseline_scanpaths
from seqverse.vision.oat.decode import decode
from seqverse.vision.oat.displays import load_displays
from seqverse.vision.oat.model import OAT
from seqverse.vision.oat.predict import inter_human, load_model, model_dirs, score_scanpaths
from seqverse.vision.oat.train import predict_objects

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("sequence_score", "sequence_score_sampled", "behavioural_delta", "multimatch", "multimatch_centres",
           "multimatch_raw",
           "levenshtein", "pred_length", "pred_target_found")


def oat_rows(name, model, displays, samples, seed=0, mm=True, mm_samples=True):
    greedy = predict_objects(model, displays)
    row = score_scanpaths(displays, greedy, multimatch_too=mm)
    if samples:
        sampled = [predict_objects(model, [d], sample=True, n=samples, seed=seed + k)[0]
                   for k, d in enumerate(displays)]
        s = score_scanpaths(displays, sampled, multimatch_too=False)
        row["sequence_score_sampled"] = s["sequence_score"]
        row["behavioural_delta_sampled"] = s["behavioural_delta"]
        if mm and mm_samples:  # MultiMatch of the first 10 samples (the alignment is slow on 2 cores)
            row["multimatch_sampled10"] = score_scanpaths(displays, [x[:10] for x in sampled])["multimatch"]
    return {"system": name, **row}


def chosen_decoding(which: str, results: Path) -> dict | None:
    """The decoding picked on validation by select_decoding.py (results/decoding_<which>.json), if any."""
    path = Path(results) / f"decoding_{which}.json"
    return json.loads(path.read_text())["chosen"] if path.is_file() else None


def chosen_rows(model, displays, chosen: dict, mm=True, landing=None) -> list[dict]:
    """OAT scored with the one decoding chosen on validation (seqverse.vision.oat.decode); when that
    choice places fixations with the landing model, also the same scanpaths on object centres (the
    landing model's ablation)."""
    rule, temp, n = chosen["decoding"], chosen["temperature"], chosen["samples"]
    land = landing if chosen.get("pixels") == "landing" else None
    name = f"OAT ({rule}" + ("" if rule == "greedy" else f", T={temp:g}, n={n}") + (
        ", landing pixels" if land is not None else "") + "; chosen on validation)"
    if rule == "sampled":
        draws = [predict_objects(model, [d], sample=True, n=n, seed=k, temperature=temp)[0]
                 for k, d in enumerate(displays)]
        row = score_scanpaths(displays, draws, multimatch_too=False)
        if mm:
            row["multimatch"] = score_scanpaths(displays, [x[:10] for x in draws], landing=land)["multimatch"]
        return [{"system": name, **row}]
    paths = [[p] for p in decode(model, displays, rule, n=n, temperature=temp, seed=0, landing=land)]
    rows = [{"system": name, **score_scanpaths(displays, paths, multimatch_too=mm, landing=land)}]
    if land is not None:
        rows.append({"system": "  the same scanpaths on object centres (no landing model)",
                     **score_scanpaths(displays, paths, multimatch_too=mm)})
    return rows


def random_init_like(model, seed: int = 0) -> OAT:
    """The network untrained (for an ensemble: its first member's architecture and layout code)."""
    first = model.members[0] if hasattr(model, "members") else model
    torch.manual_seed(seed)
    return OAT(first.config, position_table=first.position_table).eval()


def markdown(title, sets: dict, columns=COLUMNS) -> str:
    lines = [f"### {title}", ""]
    for set_name, rows in sets.items():
        cols = [c for c in columns if any(c in r for r in rows)]
        lines += [f"**{set_name}** ({rows[0].get('n_displays', '?')} displays)", "",
                  "| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for r in rows:
            lines.append(f"| {r['system']} | " + " | ".join(f"{r[c]:.3f}" if isinstance(r.get(c), float) else
                                                         str(r.get(c, "")) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def synthetic(args):
    oat = OAT.from_pretrained(args.oat)
    c = oat.config
    pixel = None
    if args.pixel:
        from seqverse.vision.oat.pixel import PixelTransformer, pixel_scanpaths

        pixel = PixelTransformer.from_pretrained(args.pixel)
    sets = {}
    for split in ("test_layout", "test_target"):
        displays = load_displays(Path(args.synth) / f"{split}.json", (c.crop_height, c.crop_width))[: args.limit]
        images = {d.name: d.image() for d in displays}
        rows = [oat_rows("OAT", oat, displays, args.samples, mm_samples=False),
                oat_rows("OAT (random init)", random_init_like(oat), displays, 0)]
        chosen = chosen_decoding("synthetic", args.results)
        if chosen:
            rows[1:1] = chosen_rows(oat, displays, chosen)
        if pixel is not None:
            rows.append({"system": "pixel transformer", **score_scanpaths(displays, [[p] for p in
                                                                                    pixel_scanpaths(pixel, displays)])})
        for name, label in (("random", "random"), ("centre", "centre-out"), ("reading", "reading order"),
                            ("saliency", "saliency (spectral residual)"), ("rgb", "target-RGB similarity")):
            paths = baseline_scanpaths(name, displays, images, max_len=c.max_len)
            rows.append({"system": label, **score_scanpaths(displays, [[p] for p in paths])})
        for r in rows:
            r["n_displays"] = len(displays)
        sets[split] = rows
        print(markdown(split, {split: rows}), flush=True)
    return sets


def human(args):
    from seqverse.vision.oat.human import load_human
    from seqverse.vision.oat.landing import Landing

    data = load_human(args.human_file)
    oat = load_model(args.oat)
    landing = Landing.load(model_dirs(args.oat)[0]) if args.landing else None
    if args.landing and landing is None:
        sys.exit(f"--landing: {args.oat} has no landing.json")
    sets = {}
    for split in ("test", "valid"):
        displays = data[split][: args.limit]
        rows = [oat_rows("OAT (layout-only)", oat, displays, args.samples),
                oat_rows("OAT (random init)", random_init_like(oat), displays, 0)]
        chosen = chosen_decoding(("human_landing" if args.landing else "human") + (f"_{args.tag}" if args.tag else ""),
                                 args.results)
        if chosen:
            rows[1:1] = chosen_rows(oat, displays, chosen, landing=landing)
        for name, label in (("random", "random"), ("centre", "centre-out"), ("reading", "reading order")):
            paths = baseline_scanpaths(name, displays, max_len=oat.config.max_len)
            rows.append({"system": label, **score_scanpaths(displays, [[p] for p in paths])})
        rows.append({"system": "inter-human (ceiling)", **inter_human(displays)})
        for r in rows:
            r["n_displays"] = len(displays)
        sets[f"{split} collages"] = rows
        print(markdown(split, {split: rows}), flush=True)
    return sets


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("synthetic")
    p.add_argument("--synth", default="runs/oat/synth2", help="make-displays folder (rebuild_default.sh stage 2)")
    p.add_argument("--oat", default="runs/oat/synth_oat_big/best", help="OAT checkpoint")
    p.add_argument("--pixel", default="runs/oat/synth_pixel/best", help="pixel transformer checkpoint ('' to skip)")
    p.add_argument("--samples", type=int, default=20, help="sampled scanpaths per display")
    p = sub.add_parser("human")
    p.add_argument("--human-file", default=None, help="amazon_covers_1-70.json (default ../shared/data/oat/)")
    p.add_argument("--oat", default="runs/oat/human_oat/best", help="layout-only OAT checkpoint, or several joined by commas (an ensemble)")
    p.add_argument("--samples", type=int, default=100, help="sampled scanpaths per collage (paper: 100)")
    p.add_argument("--landing", action="store_true", help="the chosen decoding from decoding_human_landing.json, "
                   "with the checkpoint's landing model (landing.json) when that choice uses it")
    for p in sub.choices.values():
        p.add_argument("--limit", type=int, default=None, help="only the first N displays of each set (smoke runs)")
        p.add_argument("--results", default=str(RESULTS), help="folder for the JSON + markdown results")
        p.add_argument("--tag", default="", help="read decoding_<which>[_landing]_<tag>.json (select_decoding.py --tag) "
                       "and write <which>_<tag>.{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    np.random.seed(0)
    t0 = time.time()
    sets = synthetic(args) if args.which == "synthetic" else human(args)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = args.which + (f"_{args.tag}" if args.tag else "")
    meta = {"command": "python benchmarks/vision/oat/bench_oat.py " + " ".join(sys.argv[1:]),
            "args": {k: v for k, v in vars(args).items()}, "seconds": time.time() - t0}
    (results / f"{stem}.json").write_text(json.dumps({"meta": meta, "sets": sets}, indent=2))
    title = {"synthetic": "Synthetic displays, SIMULATED searcher: held-out layouts / held-out targets",
             "human": "Amazon book covers, real people (layout-only): held-out collages"}[args.which]
    (results / f"{stem}.md").write_text(markdown(title, sets) + f"\n\n`{meta['command']}`\n")


if __name__ == "__main__":
    main()
