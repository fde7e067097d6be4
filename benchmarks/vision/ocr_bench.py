"""seqverse OCR vs Tesseract 5 on held-out synthetic receipts (CER, word F1, pages/s) + chunk ablation.

    python benchmarks/vision/ocr_bench.py                       # embedded model, 200 + 200 pages
    python benchmarks/vision/ocr_bench.py --model runs/ocr/stage/last --pages 200 --ablation-pages 50

Corpora (rendered once into runs/ocr/bench/): ``heldout`` = seed 777 in the training font families
(DejaVu, Liberation), ``unseen_font`` = seed 778 in GNU FreeFont, a family training never saw.
Training page seeds are < 500,000,000; these corpora's page seeds are 777,002,331+ and 778,002,334+.
Tesseract runs as ``tesseract IMG stdout --psm N`` (one thread, OMP_THREAD_LIMIT=1, like our model);
the page segmentation mode is picked on the first ``--psm-pages`` held-out pages among 3, 4, 6.
Results: benchmarks/vision/results/ocr.json and ocr.md (the vision README shows the table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
CORPORA = {"heldout": (777, ("dejavu", "liberation")), "unseen_font": (778, ("freefont",))}


def corpus(name: str, n: int, base: Path) -> list[Path]:
    from seqverse.vision.ocr.synth import write_corpus

    seed, fams = CORPORA[name]
    d = base / name
    imgs = sorted(d.glob("*.png"))
    if len(imgs) < n:
        imgs = write_corpus(d, n, seed=seed, families=fams, progress=False)
    return imgs[:n]


def truths(imgs):
    return [p.with_suffix(".txt").read_text() for p in imgs]


def tesseract(imgs, psm: int):
    """Tesseract's page texts (cached beside the corpus as tesseract_psmN/<stem>.txt) and its pages/s."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    out, seconds = [], 0.0
    for p in imgs:
        cache = p.parent / f"tesseract_psm{psm}" / f"{p.stem}.txt"
        if cache.exists():
            timing = json.loads(cache.with_suffix(".json").read_text())["seconds"]
            text = cache.read_text()
        else:
            t0 = time.perf_counter()
            text = subprocess.run(["tesseract", str(p), "stdout", "--psm", str(psm)], capture_output=True, text=True,
                                  env=env).stdout
            timing = time.perf_counter() - t0
            cache.parent.mkdir(exist_ok=True)
            cache.write_text(text)
            cache.with_suffix(".json").write_text(json.dumps({"seconds": timing}))
        out.append(text)
        seconds += timing
    return out, len(imgs) / seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint dir (default: the embedded one)")
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--ablation-pages", type=int, default=20)
    ap.add_argument("--model-pages", type=int, default=None, help="pages per corpus for seqverse (default: --pages)")
    ap.add_argument("--psm-pages", type=int, default=40)
    ap.add_argument("--ablation-chunks", default="1,5,10,15,20,30", help="chunk counts of the ablation")
    ap.add_argument("--chunks", type=int, default=None, help="main-table chunk count (default: the model's)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "ocr" / "bench"))
    ap.add_argument("--skip-tesseract", action="store_true", help="reuse Tesseract rows from results/ocr.json")
    ap.add_argument("--tesseract-only", action="store_true", help="run only the Tesseract part and save it")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from seqverse.vision.ocr.evaluate import evaluate_texts
    from seqverse.vision.ocr.model import default_model_dir, load
    from seqverse.vision.ocr.read import DEFAULT_CHUNKS, read_pages

    base = Path(args.work)
    sets = {name: corpus(name, args.pages, base) for name in CORPORA}
    RESULTS.mkdir(parents=True, exist_ok=True)
    old = json.loads((RESULTS / "ocr.json").read_text()) if (RESULTS / "ocr.json").exists() else {}
    res = {"pages": args.pages, "rows": [], "psm": {}, "ablation": []}

    if args.skip_tesseract and old:
        res["psm"] = old["psm"]
        res["rows"] = [r for r in old["rows"] if r["system"].startswith("tesseract")]
    else:
        sub = sets["heldout"][: args.psm_pages]
        for psm in (3, 4, 6):
            preds, pps = tesseract(sub, psm)
            res["psm"][str(psm)] = {**evaluate_texts(preds, truths(sub)), "pages_per_s": pps}
            print(f"tesseract psm {psm}: {res['psm'][str(psm)]}", file=sys.stderr, flush=True)
        best = min(res["psm"], key=lambda k: res["psm"][k]["cer"])
        for name, imgs in sets.items():
            preds, pps = tesseract(imgs, int(best))
            res["rows"].append({"system": f"tesseract 5 --psm {best}", "corpus": name, "n": len(imgs),
                                **evaluate_texts(preds, truths(imgs)), "pages_per_s": pps})
            print(res["rows"][-1], file=sys.stderr, flush=True)

    if args.tesseract_only:
        (RESULTS / "ocr.json").write_text(json.dumps(res, indent=2))
        return 0
    model_dir = Path(args.model) if args.model else default_model_dir()
    model, proc = load(model_dir)
    chunks = args.chunks or getattr(proc.cfg, "default_chunks", None) or DEFAULT_CHUNKS
    res["model"] = str(model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir)
    for name, imgs in sets.items():
        imgs = imgs[: args.model_pages or args.pages]
        rs, st = read_pages(imgs, model, proc, chunks=chunks, batch_size=48)
        res["rows"].append({"system": f"seqverse TrOCR, {chunks} chunks", "corpus": name, "n": len(imgs),
                            **evaluate_texts([r.text or "" for r in rs], truths(imgs)), "pages_per_s": st["pages_per_s"]})
        print(res["rows"][-1], file=sys.stderr, flush=True)
    sub = sets["heldout"][: args.ablation_pages]
    for n in (int(c) for c in args.ablation_chunks.split(",")):
        for snap in ((False, True) if n == chunks else (True,)):
            rs, st = read_pages(sub, model, proc, chunks=n, batch_size=48, snap=snap)
            res["ablation"].append({"chunks": n, "split": "snapped to line gaps" if snap else "equal (paper)",
                                    **evaluate_texts([r.text or "" for r in rs], truths(sub)),
                                    "pages_per_s": st["pages_per_s"]})
            print(res["ablation"][-1], file=sys.stderr, flush=True)
    (RESULTS / "ocr.json").write_text(json.dumps(res, indent=2))
    (RESULTS / "ocr.md").write_text(markdown(res, args))
    print(markdown(res, args))
    return 0


def markdown(res, args) -> str:
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    lines = [f"Held-out synthetic receipts ({res['pages']} pages per corpus; model `{res.get('model')}`):", "",
             "| system | corpus | pages | CER % | CER % without rule lines | word P % | word R % | word F1 % "
             "| amounts on their item's line % | pages/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        order = "n/a" if r.get("amounts_on_item_line") is None else pct(r["amounts_on_item_line"])
        lines.append(f"| {r['system']} | {r['corpus']} | {r.get('n', res['pages'])} | {pct(r['cer'])} | "
                     f"{pct(r['cer_without_rules'])} | {pct(r['word_precision'])} | {pct(r['word_recall'])} | "
                     f"{pct(r['word_f1'])} | {order} ({r.get('amounts_checked', 0)} read) | {r['pages_per_s']:.2f} |")
    lines += ["", f"Tesseract page segmentation modes (first {args.psm_pages} held-out pages):", "",
              "| psm | CER % | word F1 % | pages/s |", "|---|---|---|---|"]
    for k, r in res["psm"].items():
        lines.append(f"| {k} | {pct(r['cer'])} | {pct(r['word_f1'])} | {r['pages_per_s']:.2f} |")
    lines += ["", f"Chunk-count ablation (seqverse, first {args.ablation_pages} held-out pages):", "",
              "| chunks | split | CER % | word F1 % | pages/s |", "|---|---|---|---|---|"]
    for r in res["ablation"]:
        lines.append(f"| {r['chunks']} | {r['split']} | {pct(r['cer'])} | {pct(r['word_f1'])} | {r['pages_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
