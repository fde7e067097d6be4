"""Pick the default chunk count on a validation corpus (not the benchmark's held-out pages).

    python benchmarks/vision/ocr_tune_chunks.py --model runs/ocr/joint/last --pages 20

Validation pages: ``synth`` seed 901 in the training font families (page seeds 901,002,703+, unused by
training and by the benchmark corpora 777/778). Prints CER and word F1 per chunk count, and the best.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--chunks", default="10,15,20,25,30")
    ap.add_argument("--work", default=str(ROOT / "runs" / "ocr" / "tune"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from seqverse.vision.ocr.evaluate import evaluate_texts
    from seqverse.vision.ocr.model import load
    from seqverse.vision.ocr.read import read_pages
    from seqverse.vision.ocr.synth import TEMPLATE_FAMILIES, write_corpus

    d = Path(args.work)
    imgs = sorted(d.glob("*.png"))[: args.pages]
    if len(imgs) < args.pages:
        imgs = write_corpus(d, args.pages, seed=901, families=TEMPLATE_FAMILIES, progress=False)
    truths = [p.with_suffix(".txt").read_text() for p in imgs]
    model, proc = load(args.model)
    rows = []
    for n in (int(c) for c in args.chunks.split(",")):
        rs, st = read_pages(imgs, model, proc, chunks=n, batch_size=48)
        r = {"chunks": n, **evaluate_texts([x.text or "" for x in rs], truths), "pages_per_s": st["pages_per_s"]}
        rows.append(r)
        print(f"chunks {n}: CER {100 * r['cer']:.2f}%  word F1 {100 * r['word_f1']:.2f}%  "
              f"{r['pages_per_s']:.2f} pages/s", file=sys.stderr, flush=True)
    best = min(rows, key=lambda r: r["cer"])
    print(json.dumps({"best_chunks": best["chunks"], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
