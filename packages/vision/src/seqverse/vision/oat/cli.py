"""`seqverse-vision oat`: make-displays, train, predict, evaluate, plot (OAT visual-search scanpaths)."""

from __future__ import annotations

import argparse

from seqverse.core import clikit

from .decode import DECODINGS
from .refine import PIXELS

EPILOG = """examples:
  seqverse-vision oat make-displays -o runs/oat/synth                 # simulated-searcher displays, split files
  seqverse-vision oat predict runs/oat/synth/test_layout.json -o pred.json --samples 10
  seqverse-vision oat evaluate pred.json runs/oat/synth/test_layout.json
  seqverse-vision oat plot runs/oat/synth/test_layout.json pred.json -o plots/ --limit 3
  seqverse-vision oat train --train runs/oat/synth/train.json --valid runs/oat/synth/valid.json -o runs/oat/model
  seqverse-vision oat train --human ../shared/data/oat/amazon_covers_1-70.json -o runs/oat/human   # layout-only
"""


def register(subparsers) -> None:
    g = subparsers.add_parser("oat", help="OAT: object-level attention transformer for visual-search scanpaths",
                              description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = g.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("make-displays", help="render synthetic displays with a SIMULATED searcher's scanpaths",
                       description="Procedural book-cover/product objects on grid and irregular layouts; a "
                       "Guided-Search-style simulated searcher (not human data). Writes OUT/images/*.png and "
                       "OUT/{train,valid,test_layout,test_target,test_both}.json (leave-layouts-out and "
                       "leave-targets-out splits).")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, metavar="DIR", help="output folder")
    p.add_argument("--layouts", type=clikit.int_range(8, 200), default=40, help="number of layouts")
    p.add_argument("--people", type=clikit.int_range(1, 50), default=4, help="simulated scanpaths per display")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="corpus seed")
    p.add_argument("--extra-train-people", type=clikit.int_range(0, 200), default=0,
                   help="more simulated scanpaths on each training display only (a second random stream: the "
                        "other splits stay identical)")
    p.add_argument("--extra-train-targets", type=clikit.int_range(0, 200), default=0,
                   help="more training displays per training layout (other, non-held-out targets)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_make_displays)

    p = sub.add_parser("train", help="train OAT (teacher forcing, early stopping on validation behavioural delta)",
                       description="Adam, cross-entropy over [objects, end, PAD]; after each epoch greedy "
                       "scanpaths on the validation displays give the behavioural delta that selects the "
                       "best epoch (OUT/best). Runs through seqverse.core.train.fit; re-running with the same "
                       "OUT resumes from OUT/checkpoint.")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, metavar="DIR", help="run folder")
    p.add_argument("--train", type=clikit.existing_file, metavar="JSON", help="training displays with fixations")
    p.add_argument("--valid", type=clikit.existing_file, metavar="JSON", help="validation displays with fixations")
    p.add_argument("--human", type=clikit.existing_file, metavar="JSON",
                   help="the Amazon covers file: layout-only, split by collage (human.py); replaces --train/--valid")
    p.add_argument("--fold", type=int, choices=range(7), default=0, metavar="0-6",
                   help="with --human: cross-validation fold (0, the default, is the fixed split: test k %% 7 == 0, "
                        "validation k %% 7 == 3; fold f rotates both by f)")
    p.add_argument("--layout-only", action="store_true", help="ignore object images (no CNN)")
    p.add_argument("--epochs", type=clikit.positive_int, default=30, help="most epochs")
    p.add_argument("--patience", type=clikit.positive_int, default=5, help="epochs without a better validation delta")
    p.add_argument("--displays-per-batch", type=clikit.positive_int, default=4,
                   help="displays per batch (all their people's scanpaths go together)")
    p.add_argument("--lr", type=clikit.positive_float, default=1e-4, help="Adam learning rate (official 1e-4)")
    p.add_argument("--d-model", type=clikit.positive_int, default=512, help="transformer width (official 512)")
    p.add_argument("--layers", type=clikit.positive_int, default=4, help="encoder and decoder layers each (official 4)")
    p.add_argument("--max-len", type=clikit.positive_int, default=40, help="longest generated scanpath")
    p.add_argument("--threads", type=clikit.positive_int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="random seed")
    p.add_argument("--init", type=clikit.existing_dir, metavar="DIR", default=None,
                   help="start from this checkpoint's weights and configuration (e.g. a run's best/; "
                        "--d-model/--layers/--max-len are then taken from it)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="predict scanpaths for displays (embedded model by default)",
                       description="DISPLAYS.json: the shared file's schema (fixations optional and ignored; "
                       "objects with boxes and a 'crop' image each, or a display 'image' to cut them from; "
                       "without objects, a grid of cells). OUT.json maps each display to its scanpath "
                       "'fixations' [[x, y], ...] (display pixels: object centres, or where people land in "
                       "each object when the checkpoint has a landing model, landing.json; by --decoding, greedy by "
                       "default), 'objects' (indices) and, with --samples N, N sampled scanpaths.")
    p.add_argument("displays", type=clikit.existing_file, metavar="DISPLAYS.json", help="displays to predict")
    p.add_argument("-o", "--out", required=True, type=clikit.output_file, metavar="OUT.json", help="predictions file")
    p.add_argument("--samples", type=clikit.nonneg_int, default=0,
                   help="sampled scanpaths per display as well (the paper uses 100); 0: greedy only")
    p.add_argument("--model", type=_checkpoint_dirs, metavar="DIR[,DIR...]",
                   help="checkpoint folder (config.json + model.safetensors), or several joined by commas: an "
                        "ensemble, whose draws come from the mean of the models' distributions (landing.json "
                        "of the first); default: the embedded model")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="sampling seed")
    p.add_argument("--decoding", choices=DECODINGS, default="greedy",
                   help="how 'fixations' is chosen: greedy (official), mbr (of --draws sampled scanpaths, the one "
                        "with the highest mean sequence score to the others), mbr_mm (the same with sequence score "
                        "+ MultiMatch; slow), mbr_land (mbr_mm in landing pixels; needs landing.json), mbr_land_mm "
                        "(mbr_land with MultiMatch alone), likelihood (the most probable draw)")
    p.add_argument("--draws", type=clikit.positive_int, default=100, help="sampled scanpaths behind --decoding mbr/"
                   "mbr_mm/mbr_land/mbr_land_mm/likelihood")
    p.add_argument("--temperature", type=clikit.positive_float, default=1.0, help="sampling temperature of the draws "
                   "(and of --samples)")
    p.add_argument("--pixels", choices=PIXELS, default="landing",
                   help="where inside each fixated object 'fixations' sits: landing (the landing model's mean "
                        "position, the centre without landing.json) or refined (moved inside the object to raise "
                        "the expected MultiMatch against the other draws; needs landing.json and a decoding that "
                        "draws, e.g. --decoding mbr_land_mm; about 5 s a display of 84 objects on one core) or "
                        "refined_top (the 8 draws that MultiMatch MBR ranks highest each refined, and the best "
                        "refined one kept: objects and pixels; 30-60 s a display of 84 objects)")
    p.add_argument("--threads", type=clikit.positive_int, default=1, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="score predicted scanpaths against people's (sequence score, MultiMatch, ...)",
                       description="Fixations of both files are mapped to objects (box that holds them, else the "
                       "nearest centre). Sequence score: Needleman-Wunsch (match 1, gap 0) / longer length; "
                       "Levenshtein; MultiMatch vector/direction/length/position on object centres; behavioural "
                       "measures and their mean relative difference (delta) from the people's.")
    p.add_argument("pred", type=clikit.existing_file, metavar="PRED.json", help="predictions (from predict)")
    p.add_argument("human", type=clikit.existing_file, metavar="HUMAN.json", help="displays with people's fixations")
    p.add_argument("--samples", action="store_true", help="score the sampled scanpaths instead of the greedy one")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("plot", help="PNG per display: predicted and a person's scanpath side by side, numbered",
                       description="Draws on the display image when the displays file names one, else on the "
                       "object boxes; the target is outlined in green.")
    p.add_argument("displays", type=clikit.existing_file, metavar="DISPLAYS.json", help="displays (with fixations)")
    p.add_argument("pred", type=clikit.existing_file, metavar="PRED.json", help="predictions (from predict)")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, metavar="DIR", help="folder for the PNGs")
    p.add_argument("--limit", type=clikit.positive_int, default=None, help="plot only the first N displays (default: all)")
    p.add_argument("--person", default=None, help="whose fixations to show (default: the first person)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plot)


def _make_displays(args) -> None:
    from .synth import SynthSpec, make_displays

    spec = SynthSpec(n_layouts=args.layouts, people=args.people, seed=args.seed,
                     extra_train_people=args.extra_train_people, extra_train_targets=args.extra_train_targets)
    if args.layouts != 40:
        n = args.layouts
        spec.heldout_layouts = tuple(range(n - n // 5, n))
        spec.valid_layouts = tuple(range(n - n // 5 - n // 10, n - n // 5))
    counts = make_displays(args.out, spec, progress=not args.json)
    clikit.emit(counts, args.json)


def _train(args) -> None:
    from pathlib import Path

    import torch

    from .displays import load_displays
    from .model import OATConfig
    from .train import train_oat

    torch.set_num_threads(args.threads)
    if args.human:
        from .human import load_human, recorded_fold

        if recorded_fold(Path(args.out) / "best") not in (None, args.fold):
            raise clikit.InputError(f"train: {args.out} holds a run of another fold (best/human_split.json); "
                                    f"resuming it with --fold {args.fold} would mix the splits")
        data = load_human(args.human, fold=args.fold)
        train, valid = data["train"], data["valid"]
    else:
        if args.fold:
            raise clikit.InputError("train: --fold selects a split of the --human file; give --human")
        if not (args.train and args.valid):
            raise clikit.InputError("train: give --train and --valid, or --human")
        hw = None if args.layout_only else (75, 48)
        train, valid = load_displays(args.train, hw), load_displays(args.valid, hw)
    appearance = train[0].crops is not None and not args.layout_only
    if appearance and any(d.crops is None for d in train + valid):
        raise clikit.InputError("train: some displays have object images and some do not; use --layout-only")
    config = OATConfig(d_model=args.d_model, n_encoder_layers=args.layers, n_decoder_layers=args.layers,
                       appearance=appearance, max_len=args.max_len)
    init = None
    if args.init:
        from .predict import load_model

        init = load_model(args.init)
        if init.config.appearance != appearance:
            raise clikit.InputError(f"train: --init {args.init} is {'not ' if not init.config.appearance else ''}"
                                    "an appearance model, unlike these displays")
        config = init.config
    result = train_oat(train, valid, args.out, config, epochs=args.epochs, displays_per_batch=args.displays_per_batch, lr=args.lr,
                       patience=args.patience, seed=args.seed, progress=not args.json, init=init)
    if any(d.fixations for d in train):  # people's raw fixations: where in an object they land (landing.py)
        from .landing import fit_landing

        fit_landing(train).save(Path(args.out) / "best")
    if args.human:  # which collages this model never trained on (benchmarks check it)
        from .human import write_recorded_fold

        write_recorded_fold(Path(args.out) / "best", args.fold)
    clikit.emit({"best_valid_delta": result["best"], "best_epoch": result["best_epoch"],
                 "epochs_run": len(result["history"]), "model": f"{args.out}/best"}, args.json)


def _checkpoint_dirs(text: str) -> str:
    """One existing directory, or several joined by commas (returned unchanged)."""
    parts = text.split(",")
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{text}: an empty folder name in the list")
    for part in parts:
        clikit.existing_dir(part)
    return text


def _predict(args) -> None:
    import torch

    from .predict import predict_file

    torch.set_num_threads(args.threads)
    summary = predict_file(args.displays, args.out, args.model, samples=args.samples, seed=args.seed,
                           progress=not args.json, decoding=args.decoding, draws=args.draws,
                           temperature=args.temperature, pixels=args.pixels)
    clikit.emit({**summary, "out": args.out}, args.json)


def _evaluate(args) -> None:
    from .predict import evaluate_files

    clikit.emit(evaluate_files(args.pred, args.human, use_samples=args.samples), args.json)


def _plot(args) -> None:
    from .predict import plot_file

    written = plot_file(args.displays, args.pred, args.out, limit=args.limit, person=args.person)
    clikit.emit({"pngs": len(written), "out": args.out}, args.json)
