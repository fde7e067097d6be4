"""Choose among OCR checkpoints on validation pages only, by the rule written before their numbers.

    python benchmarks/vision/ocr_select_model.py runs/ocr/v4_pre/last runs/ocr/v5_cont/last --sets training
    python benchmarks/vision/ocr_select_model.py runs/ocr/v4_pre/last runs/ocr/v5_cont/last runs/ocr/v6_stretch/last

Each model is read with every reading configuration of ``ocr_select_reading.py`` on each validation set
(``training``: 20 template-free pages in the training font families; ``lato``: 20 pages in Lato, a family
never trained on nor tested; ``typewriter``, only when asked: 20 pages in Linux Libertine's monospaced
face, ``synth.TYPE_VALIDATION_FAMILIES``, never trained on nor tested). A model's score is its best
configuration's mean word F1 over the sets (the configuration chosen by that same mean); the highest score wins. Writes ``--out`` (every row) and
prints the winner with its `ocr export` flags, and each model's best word F1 on each set alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocr_select_reading import ROOT, configurations, export_flags, validation_pages  # noqa: E402

SETS = {"training": None, "lato": ("lato",), "typewriter": ("libertine-mono",)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="checkpoint directories")
    ap.add_argument("--sets", default="training,lato", help="validation sets (default training,lato)")
    ap.add_argument("--pages", type=int, default=20, help="pages per set (default 20)")
    ap.add_argument("--first", type=int, default=0,
                    help="index of the first validation page of each set (default 0; 20 reads pages never used before)")
    ap.add_argument("--ctc-weights", default="0.3,0.5,0.7,0.9", help="joint decoding weights to try")
    ap.add_argument("--out", default=str(ROOT / "runs" / "ocr" / "model_selection.json"), help="JSON result")
    ap.add_argument("--segmentation", choices=("gaps", "valleys", "grid"), default=None,
                    help="line segmentation of the --lines configurations (read.LINE_SEGMENTATION; default: "
                         "the package's)")
    ap.add_argument("--thin-lines", choices=("centred", "baseline"), default=None,
                    help="where a thin chunk's ink sits in its band (read.THIN_LINES; default: the package's)")
    ap.add_argument("--deskew", choices=("on", "off"), default=None,
                    help="level tilted pages before line segmentation (read.DESKEW; default: the package's)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from seqverse.vision.ocr import read
    from seqverse.vision.ocr.evaluate import evaluate_texts
    from seqverse.vision.ocr.model import load
    from seqverse.vision.ocr.read import read_pages

    if args.segmentation:
        read.LINE_SEGMENTATION = args.segmentation
    if args.thin_lines:
        read.THIN_LINES = args.thin_lines
    if args.deskew:
        read.DESKEW = args.deskew == "on"

    sets = {}
    for name in args.sets.split(","):
        fam = SETS[name]
        work = ROOT / "runs" / "ocr" / ("validation" + ("-" + "-".join(fam) if fam else ""))
        sets[name] = validation_pages(work, args.pages, fam, args.first)
    rows, best = [], {}
    for m in args.models:
        model, proc = load(m)
        for cfg in configurations([float(w) for w in args.ctc_weights.split(",")]):
            row = {"model": m, **cfg}
            for name, imgs in sets.items():
                rs, st = read_pages(imgs, model, proc, chunks=None, **cfg)
                e = evaluate_texts([r.text or "" for r in rs], [p.with_suffix(".txt").read_text() for p in imgs])
                row[f"{name}_word_f1"], row[f"{name}_cer"], row[f"{name}_pages_per_s"] = e["word_f1"], e["cer"], st["pages_per_s"]
            row["score"] = sum(row[f"{n}_word_f1"] for n in sets) / len(sets)
            rows.append(row)
            print(f"{m}  {export_flags(cfg):48s} " + "  ".join(f"{n} F1 {100 * row[f'{n}_word_f1']:.2f}" for n in sets),
                  file=sys.stderr, flush=True)
        best[m] = max((r for r in rows if r["model"] == m), key=lambda r: r["score"])
    winner = max(best.values(), key=lambda r: r["score"])
    res = {"sets": list(sets), "pages": args.pages, "first": args.first, "segmentation": read.LINE_SEGMENTATION,
           "thin_lines": read.THIN_LINES, "deskew": read.DESKEW, "rule": "highest mean word F1 over the sets, each model with "
           "its best configuration by that mean", "rows": rows,
           "best": {m: {"score": r["score"], "export_flags": export_flags(r)} for m, r in best.items()},
           "best_by_set": {n: {m: max(r[f"{n}_word_f1"] for r in rows if r["model"] == m) for m in args.models}
                           for n in sets},
           "winner": winner["model"], "export_flags": export_flags(winner)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ("best", "best_by_set", "winner", "export_flags")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
