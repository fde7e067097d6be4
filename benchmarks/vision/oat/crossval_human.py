"""OAT against its baselines on all 70 human collages, each held out once (7-fold cross-validation by collage).

Protocol (README "Human data, round 4", written before the runs): one model per fold (`oat train --human ...
--fold F`, the human recipe unchanged), decoded on its fold's 10 test collages with the one rule chosen on
fold 0's validation (results/decoding_human_landing.json); per collage the mean over its people of sequence
score and official MultiMatch; pooled over the 70 collages, with OAT minus each baseline paired over collages
(95% bootstrap interval, 10,000 resamples, seed 0).

    # one fold at a time (folds can run side by side), then the pooled report
    python benchmarks/vision/oat/crossval_human.py fold 0 --oat runs/s43/human_fold0/best
    python benchmarks/vision/oat/crossval_human.py report

Each fold writes results/human_crossval/fold<F>.json (scanpaths and per-collage scores); `report` pools them
into results/human_crossval.{json,md}. Round 5 runs the same with `--decoding-file` (its choice.json) and
`--out-dir results/human_crossval_round5` (pooled into results/human_crossval_round5.{json,md}); rounds 6 and 7
the same with their choice.json files: `"pixels": "refined"` (round 6) puts the chosen scanpath at refined pixels
(oat/refine.py), `"refined_top"` (round 7) replaces it by the best refined one of the top draws.
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
from seqverse.vision.oat.human import FOLDS, load_human, recorded_fold
from seqverse.vision.oat.landing import Landing
from seqverse.vision.oat.predict import inter_human, load_model, score_scanpaths
from seqverse.vision.oat.refine import refined_scanpaths, refined_top_scanpaths
from seqverse.vision.oat.train import predict_objects

RESULTS = Path(__file__).resolve().parent / "results"
FOLD_DIR = RESULTS / "human_crossval"
BASELINES = (("reading", "reading order"), ("centre", "centre-out"), ("random", "random"))
CHOSEN = "OAT (chosen decoding)"
SYSTEMS = (CHOSEN, "OAT (greedy)") + tuple(label for _, label in BASELINES) + ("inter-human",)


def model_fold(model_dir: Path) -> int:
    """The fold a human model was trained for (best/human_split.json, written by `oat train --human`)."""
    fold = recorded_fold(model_dir)
    if fold is None:
        sys.exit(f"{model_dir}: no human_split.json, so which collages it trained on is unknown")
    return fold


def kept(r: dict) -> dict:
    """Sequence score, MultiMatch and its four components (vector, direction, length, position)."""
    return {k: v for k, v in r.items() if k in ("sequence_score", "multimatch") or k.startswith("mm_")}


def per_collage(display, path, landing=None, xy=None) -> dict:
    """Scores of one object scanpath against the collage's people, at landing pixels (or ``xy`` outright)."""
    return kept(score_scanpaths([display], [[path]], landing=landing, pixels=None if xy is None else [[xy]]))


def load_fold(args, split: str):
    """(model, landing, displays) of a fold command: the --oat model (one thread), refused unless it was trained
    for this fold (its training collages would include the fold's held-out ones) and has a landing model, and the
    fold's ``split`` ("valid" or "test") collages."""
    torch.set_num_threads(1)
    model_dir = Path(args.oat)
    trained_for = model_fold(model_dir)
    if trained_for != args.fold:
        sys.exit(f"{model_dir} was trained for fold {trained_for}, not fold {args.fold}: its training "
                 f"collages include this fold's {split} collages")
    model, landing = load_model(model_dir), Landing.load(model_dir)
    if landing is None:
        sys.exit(f"{model_dir}: no landing.json")
    return model, landing, load_human(args.human_file, fold=args.fold)[split]


def run_fold(args) -> None:
    chosen = json.loads(Path(args.decoding_file).read_text())["chosen"]
    model, landing, displays = load_fold(args, "test")
    displays = displays[: args.limit]
    start = time.time()
    drawn: list = []
    paths = {CHOSEN: decode(model, displays, chosen["decoding"], n=chosen["samples"],
                            temperature=chosen["temperature"], seed=0, landing=landing, draws_out=drawn),
             "OAT (greedy)": [one[0] for one in predict_objects(model, displays)]}
    refined = None
    if chosen.get("pixels") == "refined":   # round 6
        refined = refined_scanpaths(displays, paths[CHOSEN], drawn, landing, seed=0)
    elif chosen.get("pixels") == "refined_top":   # round 7: objects and pixels
        paths[CHOSEN], refined = refined_top_scanpaths(displays, drawn, landing, seed=0)
    for name, label in BASELINES:
        paths[label] = baseline_scanpaths(name, displays, max_len=model.config.max_len)
    collages = []
    for k, d in enumerate(displays):
        scores = {s: per_collage(d, paths[s][k], landing if s.startswith("OAT") else None,
                                 xy=refined[k] if refined is not None and s == CHOSEN else None) for s in paths}
        scores["inter-human"] = kept(inter_human([d]))
        row = {"collage": d.name, "scores": scores, "paths": {s: list(map(int, paths[s][k])) for s in paths}}
        if refined is not None:
            row["pixels"] = refined[k].tolist()
        collages.append(row)
        print(f"fold {args.fold} {d.name}: " + ", ".join(f"{s} {v['sequence_score']:.3f}/{v['multimatch']:.3f}"
                                                          for s, v in scores.items()), flush=True)
    fold_dir = Path(args.out_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    out = {"fold": args.fold, "model": str(Path(args.oat)), "decoding": chosen, "seconds": round(time.time() - start, 1),
           "collages": collages}
    if args.limit is not None:  # a smoke run: printed, never pooled
        return
    (fold_dir / f"fold{args.fold}.json").write_text(json.dumps(out, indent=1) + "\n")


def bootstrap(diff: np.ndarray, resamples: int = 10_000) -> list[float]:
    """95% percentile interval of the mean of paired differences, the pairs resampled with replacement (seed 0)."""
    rng = np.random.default_rng(0)
    boot = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


def report(args) -> None:
    fold_dir = Path(args.out_dir)
    folds = [json.loads((fold_dir / f"fold{f}.json").read_text()) for f in range(FOLDS)
             if (fold_dir / f"fold{f}.json").is_file()]
    if not folds:
        sys.exit(f"no fold results in {fold_dir}")
    rows = [c for f in folds for c in f["collages"]]
    names = [c["collage"] for c in rows]
    if len(set(names)) != len(names):
        sys.exit("a collage is in two folds' results")
    by_name = {d.name: d for split in load_human(args.human_file).values() for d in split}
    displays = [by_name[n] for n in names]
    scores = {s: np.array([[c["scores"][s]["sequence_score"], c["scores"][s]["multimatch"]] for c in rows])
              for s in SYSTEMS}
    pooled = {}
    for s in SYSTEMS:
        pooled[s] = {"sequence_score": float(scores[s][:, 0].mean()), "multimatch": float(scores[s][:, 1].mean())}
        if s != "inter-human":
            pooled[s]["behavioural_delta"] = score_scanpaths(
                displays, [[c["paths"][s]] for c in rows], multimatch_too=False)["behavioural_delta"]
    differences = {}
    for s in SYSTEMS[2:]:  # the baselines, and the people themselves
        differences[s] = {}
        for k, metric in enumerate(("sequence_score", "multimatch")):
            diff = scores[CHOSEN][:, k] - scores[s][:, k]
            differences[s][metric] = {"difference": float(diff.mean()), "ci95": bootstrap(diff),
                                      "collages_oat_ahead": int((diff > 0).sum()), "collages": len(diff)}
    components = {s: {k: float(np.mean([c["scores"][s][k] for c in rows])) for k in rows[0]["scores"][s]
                      if k.startswith("mm_")} for s in SYSTEMS}
    per_fold = [{"fold": f["fold"], "model": f["model"], "seconds": f["seconds"],
                 **{s: {m: float(np.mean([c["scores"][s][m] for c in f["collages"]]))
                        for m in ("sequence_score", "multimatch")} for s in (CHOSEN, "reading order")}}
                for f in folds]
    command = "python benchmarks/vision/oat/crossval_human.py report"
    if fold_dir.resolve() != FOLD_DIR.resolve():
        command += f" --out-dir {args.out_dir}"
    out = {"command": command, "folds": [f["fold"] for f in folds],
           "collages": len(rows), "decoding": folds[0]["decoding"], "pooled": pooled,
           "oat_minus_baseline": differences, "multimatch_components": components, "per_fold": per_fold}
    stem = fold_dir.parent / fold_dir.name   # results/human_crossval/ -> results/human_crossval.{json,md}
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    md = [f"Human collages held out by cross-validation: folds {out['folds']}, {len(rows)} collages x 6 people.",
          "", "| system | sequence score | MultiMatch | behavioural delta |", "|---|---|---|---|"]
    for s in SYSTEMS:
        p = pooled[s]
        delta = f"{p['behavioural_delta']:.3f}" if "behavioural_delta" in p else "0"
        md.append(f"| {s} | {p['sequence_score']:.3f} | {p['multimatch']:.3f} | {delta} |")
    md += ["", "| OAT (chosen) minus | sequence score [95% CI] (collages ahead) | MultiMatch [95% CI] (collages ahead) |",
           "|---|---|---|"]
    for s, d in differences.items():
        cells = [f"{d[m]['difference']:+.3f} [{d[m]['ci95'][0]:+.3f}, {d[m]['ci95'][1]:+.3f}] "
                 f"({d[m]['collages_oat_ahead']} of {d[m]['collages']})" for m in ("sequence_score", "multimatch")]
        md.append(f"| {s} | " + " | ".join(cells) + " |")
    md += ["", "MultiMatch components (pooled):", "", "| system | vector | direction | length | position |",
           "|---|---|---|---|---|"]
    md += [f"| {s} | " + " | ".join(f"{components[s]['mm_' + k]:.3f}" for k in ("vector", "direction", "length", "position"))
           + " |" for s in SYSTEMS]
    md += ["", "| fold | OAT SS | OAT MM | reading SS | reading MM |", "|---|---|---|---|---|"]
    for f in per_fold:
        md.append(f"| {f['fold']} | {f[CHOSEN]['sequence_score']:.3f} | {f[CHOSEN]['multimatch']:.3f} | "
                  f"{f['reading order']['sequence_score']:.3f} | {f['reading order']['multimatch']:.3f} |")
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def validation_rows(out_dir: Path) -> list[dict]:
    """Every fold's validation collage rows (out_dir/valid_fold<F>.json, written by a `valid F` command), pooled."""
    missing = [f for f in range(FOLDS) if not (out_dir / f"valid_fold{f}.json").is_file()]
    if missing:
        sys.exit(f"validation rows missing for folds {missing}: run `valid F` first")
    return [c for f in range(FOLDS) for c in json.loads((out_dir / f"valid_fold{f}.json").read_text())["collages"]]


def pooled_means(rows: list[dict], systems, metrics) -> dict:
    """{system: {metric: mean over the rows}}."""
    return {s: {m: float(np.mean([c["scores"][s][m] for c in rows])) for m in metrics} for s in systems}


def multimatch_gain(rows: list[dict], new: str, old: str) -> tuple[np.ndarray, int]:
    """Per-collage MultiMatch of system ``new`` minus ``old`` over the rows, and on how many ``new`` is ahead."""
    gain = np.array([c["scores"][new]["multimatch"] - c["scores"][old]["multimatch"] for c in rows])
    return gain, int((gain > 0).sum())


def write_choice(out_dir: Path, out: dict) -> None:
    """A round's choice.json (its rule applied to validation), printed too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "choice.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def validation_main(doc: str, valid, choose, valid_help: str) -> None:
    """The command line of a round's validation script: `valid F --oat DIR` per fold, then `choose`."""
    ap, sub, add_fold_command = fold_commands(doc)
    add_fold_command("valid", valid_help, valid)
    sub.add_parser("choose", help="pool the folds' validation rows and apply the rule").set_defaults(func=choose)
    args = ap.parse_args()
    args.func(args)


def fold_commands(doc: str):
    """(parser, subparsers, add_fold_command) for the cross-validation scripts: a command that runs on one fold's
    model (positional fold, --oat) is added by add_fold_command(name, help, func)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--human-file", default=None, help="amazon_covers_1-70.json (default ../shared/data/oat/)")
    sub = ap.add_subparsers(dest="stage", required=True)

    def add_fold_command(name: str, help: str, func):
        p = sub.add_parser(name, help=help)
        p.add_argument("fold", type=int, choices=range(FOLDS))
        p.add_argument("--oat", required=True, help="that fold's checkpoint (RUN/best)")
        p.set_defaults(func=func)
        return p

    return ap, sub, add_fold_command


def main():
    ap, sub, add_fold_command = fold_commands(__doc__)
    p = add_fold_command("fold", "decode and score one fold's test collages", run_fold)
    p.add_argument("--limit", type=int, default=None, help="only the first N collages, printed, not saved (a smoke run)")
    p.add_argument("--decoding-file", default=str(RESULTS / "decoding_human_landing.json"),
                   help="JSON whose 'chosen' names the decoding (default: round 2's choice, used by round 4)")
    p.add_argument("--out-dir", default=str(FOLD_DIR), help="folder for fold<F>.json (default results/human_crossval)")
    r = sub.add_parser("report", help="pool the folds' results into <out-dir>.{json,md}")
    r.add_argument("--out-dir", default=str(FOLD_DIR), help="folder of fold<F>.json (default results/human_crossval)")
    r.set_defaults(func=report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
