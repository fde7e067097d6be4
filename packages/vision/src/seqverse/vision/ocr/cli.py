"""`seqverse-vision ocr`: synth, train, read, evaluate (localization-free receipt OCR, TrOCR)."""

from __future__ import annotations

import argparse
import sys

from seqverse.core import clikit

EPILOG = """examples:
  seqverse-vision ocr read receipt.png                      # embedded model, prints the page text
  seqverse-vision ocr read scans/*.jpg -o out/ --json        # out/<stem>.txt per page, JSON summary
  seqverse-vision ocr synth -n 200 -o heldout --seed 777    # held-out synthetic receipts (+ .txt truth)
  seqverse-vision ocr synth -n 50 -o pages --kind free --fonts freefont,urw   # template-free pages, held-out fonts
  seqverse-vision ocr synth -n 50 -o lines --lines          # text-line mode (stage-1 data)
  seqverse-vision ocr evaluate out/ heldout/                # CER and word precision/recall/F1
  seqverse-vision ocr train -o runs/ocr/stage               # both stages; re-run to resume
  seqverse-vision ocr train -o runs/ocr/v2 --stem-init easyocr   # encoder stem from EasyOCR's CRNN
"""


def register(subparsers) -> None:
    g = subparsers.add_parser("ocr", help="full-page receipt OCR without text localisation (TrOCR, chunk curriculum)",
                              description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = g.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("read", help="transcribe page images and PDFs in reading order",
                       description="Split each page into horizontal chunks (borders snapped to gaps between text "
                       "lines), read every chunk with TrOCR, join in reading order. Pages are scaled so their "
                       "line pitch (measured from the ink) is the model's, or, for older models, to the model's "
                       "page width. The embedded model reads one chunk a line with joint CTC/attention decoding "
                       "(its stored settings; --no-lines --decoder attention is the paper's plain reading). "
                       "A PDF (rendered at 300 dpi) or multi-page TIFF gives one text, its pages separated by form feeds, "
                       "as Tesseract writes them. Pages over 89 megapixels are refused. A file that cannot be read is reported on stderr "
                       "and the others still finish (exit status 2 if any failed).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="page images (PNG, JPEG, TIFF, ...) or PDFs")
    p.add_argument("-o", "--out", metavar="DIR", type=clikit.output_dir,
                   help="write DIR/<file stem>.txt per file instead of printing (DIR is made only if a page is read)")
    p.add_argument("--chunks", type=clikit.int_range(1, 200), default=None,
                   help="chunks per page (default: the model's stored value, or for models scaled by line pitch "
                   "one chunk per 0.6 x input height of the scaled page)")
    p.add_argument("--model", metavar="DIR", type=clikit.existing_dir,
                   help="checkpoint directory (seqverse or an official TrOCR one, offline; default: embedded)")
    p.add_argument("--batch-size", type=clikit.int_range(1, 4096), default=32, help="chunks decoded together")
    p.add_argument("--no-snap", action="store_true", help="the paper's plain equal split (no snapping to line gaps)")
    add_reading_options(p, "(default: the model's stored setting)")
    p.add_argument("--beam", type=clikit.int_range(1, 16), default=1,
                   help="joint decoding keeps this many prefixes a line (1: greedy; 4 read 1.5 word F1 better "
                   "on validation pages at a seventh of the speed)")
    add_precision_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_read)

    p = sub.add_parser("synth", help="render synthetic receipts (or text lines) with ground truth",
                       description="Write N images NNNNN.png with NNNNN.txt beside each (the text in reading "
                       "order, one line per printed line). Fonts from Debian font packages; GNU FreeFont is "
                       "held out of training for the unseen-font test.")
    p.add_argument("-n", type=clikit.int_range(1, 1_000_000), required=True, help="how many images")
    p.add_argument("-o", "--out", required=True, metavar="DIR", type=clikit.output_dir, help="directory to write")
    p.add_argument("--seed", type=clikit.nonneg_int, default=777, help="corpus seed (training never uses seeds >= 500)")
    p.add_argument("--fonts", default="dejavu,liberation",
                   help="comma-separated font families (see synth.FONT_FAMILIES; freefont and urw are held out of training)")
    p.add_argument("--lines", action="store_true", help="text-line mode: one printed line per image (template receipts)")
    p.add_argument("--kind", choices=["template", "free"], default="template",
                   help="template receipts, or template-free pages (dictionary words, random strings, numbers)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("evaluate", help="CER and word precision/recall/F1 of predicted page texts",
                       description="Pairs PRED_DIR/<stem>.txt with GT_DIR/<stem>.txt. CER: edit distance over "
                       "whitespace-normalised page text / ground-truth length; words: multiset of whitespace tokens.")
    p.add_argument("pred_dir", type=clikit.existing_dir, help="directory of predicted <stem>.txt files")
    p.add_argument("gt_dir", type=clikit.existing_dir, help="directory of ground-truth <stem>.txt files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train", help="train TrOCR: text lines, then the chunk curriculum (resumable)",
                       description="Stage 1 trains on single printed lines; stage 2 on bands of whole lines whose "
                       "height grows to the model's input height. Pages are rendered on the fly. Re-running "
                       "with the same OUT resumes from OUT/last.")
    p.add_argument("-o", "--out", required=True, metavar="DIR", type=clikit.output_dir, help="run directory (resumable)")
    p.add_argument("--steps", type=clikit.positive_int, default=3000, help="optimizer steps")
    p.add_argument("--batch-size", type=clikit.int_range(1, 4096), default=12, help="pages per step")
    p.add_argument("--lr", type=clikit.positive_float, default=1.5e-3, help="peak learning rate")
    p.add_argument("--line-steps", type=clikit.nonneg_int, default=150, help="stage-1 steps on single lines")
    p.add_argument("--grow-steps", type=clikit.nonneg_int, default=350, help="steps over which the band height grows")
    p.add_argument("--eval-every", type=clikit.positive_int, default=150, help="steps between validation evaluations")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), default=1, help="torch CPU threads")
    p.add_argument("--scramble", type=clikit.probability, default=0.5,
                   help="stage-1 share of pages with random-character words (half of it in stage 2)")
    p.add_argument("--ctc-weight", type=clikit.nonneg_float, default=0.5, help="joint CTC loss on single lines (0: off)")
    p.add_argument("--guide-weight", type=clikit.nonneg_float, default=0.0,
                   help="CTC-guided cross-attention on single lines: the decoder step writing a character is "
                        "pulled to the column where the CTC head's best path emits it (training aid; 0: off)")
    p.add_argument("--init", metavar="DIR", default="", type=lambda t: clikit.existing_dir(t) if t else t,
                   help="start from this checkpoint's weights (default: from scratch)")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of weights and rendered pages")
    p.add_argument("--arch", choices=["receipt", "v1"], default="receipt",
                   help="receipt: pages scaled by line pitch, variable width (issue 25); v1: the width-scaled model before it")
    p.add_argument("--stem", choices=["conv", "easyocr"], default="conv",
                   help="encoder stem (receipt arch): small conv stem, or EasyOCR CRNN's first four convolutions")
    p.add_argument("--stem-init", choices=["none", "easyocr"], default="none",
                   help="start the easyocr stem from EasyOCR's pretrained english_g2 weights (none: random init)")
    p.add_argument("--template-share", type=clikit.probability, default=0.2,
                   help="share of template receipts among training pages (the rest are template-free)")
    p.add_argument("--stretch", type=_stretch_range, default=(), metavar="LO,HI",
                   help="scale each template-free page horizontally by a factor drawn from [LO, HI] (condensed "
                   "and extended type, double-width lines), e.g. 0.75,1.6 (default: off)")
    p.add_argument("--more-fonts", action="store_true",
                   help="template-free pages also in 10 more Debian font families (synth.EXTRA_TRAIN_FAMILIES: IBM Plex, "
                   "Go, mononoki, Anonymous Pro, Inter, Comic Neue, B612, Agave, OCR-A, Cantarell; those not installed are skipped and named)")
    p.add_argument("--type-fonts", action="store_true",
                   help="template-free pages also in 15 typewriter, book-serif and monospaced Debian families "
                   "(synth.TYPE_TRAIN_FAMILIES: Latin Modern Mono, CMU Typewriter/Serif, STIX, "
                   "Caladea, EB Garamond, Old Standard, Charis SIL, PT Mono/Serif, IBM 3270, League Mono, Baskervald, "
                   "Quattrocento, Hermit, Monoid, Fantasque Sans Mono; none drawn from a test family; those not "
                   "installed are skipped and named)")
    p.add_argument("--more-styles", type=clikit.probability, default=0.0, metavar="P",
                   help="template-free pages: with probability P the face is one of the family's other installed "
                   "faces (italic, oblique, light, medium, condensed; synth.style_faces; never a test or validation "
                   "family's), e.g. 0.5 (default: 0, the listed faces only)")
    p.add_argument("--leaders", type=clikit.probability, default=0.0,
                   help="template-free pages: each line is first, with this probability, a row of leader dots or "
                   "asterisks (the pair models confuse), e.g. 0.1 (default: 0, off)")
    p.add_argument("--stop-step", type=clikit.positive_int, default=None,
                   help="stop at this step (resumable; the schedule stays that of --steps; default: run to --steps)")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="copy a training run's model (no optimizer) into a directory with a model card",
                       description="Without -o, replaces the embedded default checkpoint inside the package.")
    p.add_argument("run", metavar="RUN_DIR", type=clikit.existing_dir, help="training run directory (`ocr train -o`)")
    p.add_argument("-o", "--out", metavar="DIR", type=clikit.output_dir,
                   help="model directory to write (default: replace the embedded model)")
    p.add_argument("--chunks", type=clikit.int_range(1, 200), default=None,
                   help="default chunk count stored with the model (default: 15 for width-scaled models, "
                   "automatic from the page height for pitch-scaled ones)")
    p.add_argument("--command", default="", help="the training command(s), recorded in the model card (default: empty)")
    add_reading_options(p, "(stored as the model's default; choose on validation pages: "
                           "benchmarks/vision/ocr_select_reading.py)")
    p.set_defaults(func=_export)


def add_reading_options(p, when: str) -> None:
    """``--lines``, ``--decoder``, ``--ctc-weight`` and ``--crop`` (read.read_pages), shared by read, export and
    benchmarks/vision/ocr_bench.py."""
    p.add_argument("--lines", action=argparse.BooleanOptionalAction, default=None,
                   help="one chunk a printed line, found by the blank rows between lines (pitch-scaled models) " + when)
    p.add_argument("--decoder", choices=("attention", "joint"), default=None,
                   help="attention: TrOCR's greedy decoder; joint: decoder + the encoder's CTC head "
                   "(Watanabe et al. 2017), stops loops; needs --lines " + when)
    p.add_argument("--ctc-weight", type=clikit.float_range(0.0, 1.0), default=None,
                   help="weight of the CTC prefix score in joint decoding " + when)
    p.add_argument("--crop", action=argparse.BooleanOptionalAction, default=None,
                   help="cut each chunk to its inked columns, so a short line costs about its own width " + when)


def add_precision_option(p) -> None:
    """``--precision`` (read.read_pages), shared by read and benchmarks/vision/ocr_bench.py; a property of
    the machine, so never stored with a model."""
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the encoder's number format in joint decoding: auto is bf16 where the CPU (AVX512-BF16, "
                   "AMX) or GPU has it natively (1.3x the pages/s here, word F1 equal within 0.4 on validation "
                   "pages), else fp32; fp32 reads the same on every machine")


def _stretch_range(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        lo, hi = (float(x) for x in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or not 0.25 <= lo <= hi <= 4.0:
        raise argparse.ArgumentTypeError(f"expected LO,HI with 0.25 <= LO <= HI <= 4, got {text!r}")
    return lo, hi


def _model(args):
    from .model import default_model_dir, load

    return load(args.model or default_model_dir())


def _read(args) -> None:
    import json
    from pathlib import Path

    from .documents import count_pages
    from .read import DEFAULT_CHUNKS, PageError, read_pages, reading_settings

    errors = []
    for image in args.images:  # no page readable: say so without loading the model
        try:
            count_pages(image)
        except PageError as err:
            errors.append(str(err))
    if len(errors) == len(args.images):
        for err in errors:
            print(f"seqverse-vision: error: {err}", file=sys.stderr)
        print(f"0/{len(errors)} pages read", file=sys.stderr)
        raise SystemExit(2)
    model, proc = _model(args)
    pitch_scaled = proc.cfg is not None and proc.cfg.scale == "height"  # those split pages by their own height
    chunks = (args.chunks or (getattr(proc.cfg, "default_chunks", None) if proc.cfg else None)
              or (None if pitch_scaled else DEFAULT_CHUNKS))
    try:
        lines = reading_settings(proc, args.lines, args.decoder, args.ctc_weight, args.crop, args.beam)[0]
    except ValueError as err:
        raise clikit.InputError(str(err)) from None
    if lines and args.chunks:
        raise clikit.InputError("--chunks sets N chunks a page, but this reading makes one chunk a line: "
                                "add --no-lines --decoder attention to split pages into N chunks")
    results, stats = read_pages(args.images, model, proc, chunks=chunks, batch_size=args.batch_size,
                                snap=not args.no_snap, progress=len(args.images) > 1, lines=args.lines,
                                decoder=args.decoder, ctc_weight=args.ctc_weight, crop=args.crop, beam=args.beam,
                                precision=args.precision)
    for r in results:
        if r.error:
            print(f"seqverse-vision: error: {r.error}", file=sys.stderr)
    if args.out:  # atomic_write makes DIR only when a page was read, so no empty DIR is left behind
        for r in results:
            if r.error is None:
                with clikit.atomic_write(Path(args.out) / f"{Path(r.image).stem}.txt") as fh:
                    fh.write(r.text + "\n")
    if args.json:
        print(json.dumps({"pages": [r.__dict__ for r in results], **stats}, indent=2))
    elif not args.out:
        for r in results:
            if r.error is None:
                if len(results) > 1:
                    print(f"==> {r.image} <==")
                print(r.text)
    docs = f" ({stats['pages_read']} pages)" if stats["pages_read"] != stats["read"] else ""
    print(f"{stats['read']}/{stats['pages']} pages{docs}, {stats['pages_per_s']:.2f} pages/s, {stats['chunks'] or 'auto'} chunks, "
          f"{stats['decoder']} decoder", file=sys.stderr)
    if stats["failed"]:
        raise SystemExit(2)


def _synth(args) -> None:
    from .synth import FONT_FAMILIES, write_corpus

    fams = tuple(f.strip() for f in args.fonts.split(",") if f.strip())
    bad = [f for f in fams if f not in FONT_FAMILIES]
    if bad or not fams:
        raise clikit.InputError(f"--fonts: unknown family {bad}; choose from {', '.join(FONT_FAMILIES)}")
    if args.kind == "free" and args.lines:
        raise clikit.InputError("--lines takes template receipts (--kind template)")
    paths = write_corpus(args.out, args.n, seed=args.seed, families=fams, lines=args.lines, free=args.kind == "free")
    print(f"wrote {len(paths)} images with ground truth to {args.out}", file=sys.stderr)


def _evaluate(args) -> None:
    from .evaluate import evaluate_dirs

    clikit.emit(evaluate_dirs(args.pred_dir, args.gt_dir), args.json)


def _train(args) -> None:
    import torch

    from .model import OCRConfig, receipt_config
    from .train import TrainConfig, train

    if args.stem_init == "easyocr" and args.stem != "easyocr":
        raise clikit.InputError("--stem-init easyocr needs --stem easyocr")
    if args.guide_weight > 0 and args.ctc_weight == 0:
        raise clikit.InputError("--guide-weight needs the CTC head's alignment: set --ctc-weight above 0")
    if args.stem == "easyocr" and args.arch != "receipt":
        raise clikit.InputError("--stem easyocr needs --arch receipt")
    torch.set_num_threads(args.threads)
    model = receipt_config() if args.arch == "receipt" else OCRConfig()
    model.stem = args.stem
    tc = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, line_steps=args.line_steps,
                     grow_steps=args.grow_steps, eval_every=args.eval_every, seed=args.seed,
                     scramble=args.scramble, ctc_weight=args.ctc_weight, guide_weight=args.guide_weight, init=args.init,
                     template_share=args.template_share, stem_init="" if args.stem_init == "none" else "easyocr",
                     stretch=args.stretch, more_fonts=args.more_fonts, type_fonts=args.type_fonts,
                     leaders=args.leaders,
                     styles=args.more_styles, model=model)
    state = train(args.out, tc, log=lambda s: print(s, file=sys.stderr, flush=True), stop_step=args.stop_step)
    print(f"step {state['step']}; history: {state['history'][-3:]}", file=sys.stderr)


def _export(args) -> None:
    from pathlib import Path

    from .model import default_model_dir
    from .train import export

    if not (Path(args.run) / "last" / "trainer_state.json").exists():
        raise clikit.InputError(f"{args.run}: no training run here (expected {args.run}/last/trainer_state.json)")
    reading = {k: v for k, v in (("lines", args.lines), ("decoder", args.decoder), ("ctc_weight", args.ctc_weight),
                                 ("crop", args.crop)) if v is not None}
    try:
        dst = export(args.run, args.out or default_model_dir(), default_chunks=args.chunks, command=args.command,
                     reading=reading)
    except ValueError as err:
        raise clikit.InputError(str(err)) from None
    print(f"exported to {dst}", file=sys.stderr)
