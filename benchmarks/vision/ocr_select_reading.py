"""Choose a pitch-scaled model's reading settings on validation pages (never on the test sets).

    python benchmarks/vision/ocr_select_reading.py --model runs/ocr/v4_pre/last --pages 20

Validation pages: template-free pages (``synth.render_page``) in the training font families (or ``--families``,
e.g. ``lato``, a family never trained on nor tested) from page seeds ``train.VAL_SEED_BASE + 1000 + i`` (training draws seeds below ``TRAIN_SEED_LIMIT``; the test sets
use 2,000,000,000+). Every configuration is read and listed; the rule, fixed before any number: the
highest word F1 wins, CER breaks ties. Configurations: chunks of 0.6 x the input height with the
attention decoder (the paper's reading, borders snapped), one chunk per line with the attention
decoder, and one chunk per line with joint CTC/attention decoding at each ``--ctc-weights``.
Writes ``--out`` (JSON: rows and the winner) and prints the `ocr export` flags of the winner.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def validation_pages(d: Path, n: int, families: tuple | None = None, first: int = 0) -> list[Path]:
    """Validation pages ``first`` .. ``first + n - 1`` (rendered on first use)."""
    from seqverse.vision.ocr import synth
    from seqverse.vision.ocr.train import VAL_SEED_BASE

    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + n):
        p = d / f"{i:05d}.png"
        if not p.exists():
            page = synth.render_page(VAL_SEED_BASE + 1000 + i, families=families or synth.TRAIN_FAMILIES)
            page.image.save(p)
            p.with_suffix(".txt").write_text(page.text + "\n")
        paths.append(p)
    return paths


def configurations(weights: list[float]) -> list[dict]:
    return ([{"lines": False, "decoder": "attention", "crop": False}, {"lines": True, "decoder": "attention", "crop": False}]
            + [{"lines": True, "decoder": "joint", "ctc_weight": w, "crop": crop} for crop in (False, True) for w in weights])


def export_flags(cfg: dict) -> str:
    flags = ["--lines" if cfg["lines"] else "--no-lines", f"--decoder {cfg['decoder']}"]
    if "ctc_weight" in cfg:
        flags.append(f"--ctc-weight {cfg['ctc_weight']}")
    flags.append("--crop" if cfg["crop"] else "--no-crop")
    return " ".join(flags)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (a pitch-scaled model)")
    ap.add_argument("--pages", type=int, default=20, help="validation pages (default 20)")
    ap.add_argument("--ctc-weights", default="0.3,0.5,0.7,0.9", help="joint decoding weights to try")
    ap.add_argument("--families", default="", help="font families of the validation pages (default: the training "
                    "families; `lato`, synth.VALIDATION_FAMILIES, is never trained on nor tested)")
    ap.add_argument("--work", default=None, help="where the pages are written (default: runs/ocr/validation[-FAMILIES])")
    ap.add_argument("--out", default=None, help="JSON result (default: <model>/reading_selection.json)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from seqverse.vision.ocr.evaluate import evaluate_texts
    from seqverse.vision.ocr.model import load
    from seqverse.vision.ocr.read import read_pages

    families = tuple(f for f in args.families.split(",") if f)
    work = args.work or str(ROOT / "runs" / "ocr" / ("validation" + ("-" + "-".join(families) if families else "")))
    imgs = validation_pages(Path(work), args.pages, families or None)
    truths = [p.with_suffix(".txt").read_text() for p in imgs]
    model, proc = load(args.model)
    rows = []
    for cfg in configurations([float(w) for w in args.ctc_weights.split(",")]):
        rs, st = read_pages(imgs, model, proc, chunks=None, **cfg)
        rows.append({**cfg, **evaluate_texts([x.text or "" for x in rs], truths), "pages_per_s": st["pages_per_s"]})
        print(f"{export_flags(cfg):45s} word F1 {100 * rows[-1]['word_f1']:.2f}  CER {100 * rows[-1]['cer']:.2f}%  "
              f"{st['pages_per_s']:.2f} pages/s", file=sys.stderr, flush=True)
    best = max(rows, key=lambda r: (r["word_f1"], -r["cer"]))
    res = {"model": str(args.model), "pages": len(imgs), "families": list(families) or "training", "rule": "highest word F1, then lowest CER", "rows": rows,
           "best": {k: best[k] for k in ("lines", "decoder", "ctc_weight", "crop") if k in best},
           "export_flags": export_flags(best)}
    out = Path(args.out) if args.out else Path(args.model) / "reading_selection.json"
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps({"best": res["best"], "export_flags": res["export_flags"], "written": str(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
