"""`seqverse-speech adaspeech ...`: corpus, train, adapt, say, voices, evaluate."""

from __future__ import annotations

import argparse

from seqverse.core import clikit

SPEED = clikit.float_range(0.25, 4.0)  # beyond these rates durations collapse to 0 frames or balloon


def _safetensors_out(text: str) -> str:
    clikit.output_file(text)
    if not text.endswith(".safetensors"):
        raise argparse.ArgumentTypeError(f"{text}: a voice file must end in .safetensors")
    return text


def _wav_out(text: str) -> str:
    clikit.output_file(text)
    if not text.lower().endswith(".wav"):
        raise argparse.ArgumentTypeError(f"{text}: the output must end in .wav")
    return text


def _corpus(args):
    from seqverse.speech.adaspeech.corpus import build_corpus, default_speakers

    s = build_corpus(args.out, sentences_per_source=args.sentences, seed=args.seed, test_sentences=args.test_sentences,
                     speakers=default_speakers(flite=not args.no_flite, extended=args.voices == "extended"))
    clikit.emit({"out": args.out, "utterances": s["n_utterances"], "speakers": len(s["speakers"]),
                 "alignment": s["alignment"]}, args.json)


def _train(args):
    import torch

    from seqverse.speech.adaspeech.api import export_model
    from seqverse.speech.adaspeech.train import train

    torch.set_num_threads(args.threads)
    from seqverse.speech.adaspeech.model import PAPER_SIZE

    sizes = dict(PAPER_SIZE) if args.size == "paper" else {}
    sizes.update({k: v for k, v in (("decoder_layers", args.decoder_layers), ("speaker_dim", args.speaker_dim)) if v})
    r = train(args.corpus, args.out, steps=args.steps, max_frames=args.max_frames, lr=args.lr, seed=args.seed,
              config_overrides=sizes, warmup=args.warmup, checkpoint_every=args.checkpoint_every)
    export_model(f"{args.out}/model", args.corpus, f"{args.out}/model")
    clikit.emit({"step": r["step"], "model": r["out"], **{f"val_{k}": v for k, v in r["val"].items()}}, args.json)


def _adapt(args):
    from seqverse.speech.adaspeech.api import adapt_files

    r = adapt_files(args.model, args.wavs, args.texts, args.out, mode=args.mode, steps=args.steps)
    clikit.emit(r, args.json)


def _say(args):
    from seqverse.speech.adaspeech.api import say

    clikit.emit(say(args.text, args.out, voice=args.voice, model_dir=args.model, duration_scale=args.speed), args.json)


def _voices(args):
    from seqverse.speech.adaspeech.api import list_voices

    clikit.emit(list_voices(args.model), args.json)


def _evaluate(args):
    from seqverse.speech.adaspeech.api import load_model, read_adaptation_set, resolve_voice
    from seqverse.speech.adaspeech.evaluate import evaluate_ceiling, evaluate_voice

    tests = [(str(w), t) for w, t in read_adaptation_set(args.wavs, args.texts)]
    model = load_model(args.model)
    rows = [{"system": args.voice or "default", **evaluate_voice(model, resolve_voice(args.voice, model, args.model), tests, progress=True)}]
    if args.ceiling:
        rows.append({"system": "vocoded ground truth", **evaluate_ceiling(tests)})
    clikit.emit(rows, args.json)


def register(subparsers) -> None:
    p = subparsers.add_parser("adaspeech", help="AdaSpeech adaptive TTS: custom voices from ~20 sentences",
                              description="AdaSpeech (ICLR 2021): a multi-speaker FastSpeech 2 with conditional layer norm "
                                          "in the mel decoder; a new voice fine-tunes only CLN and a speaker embedding.")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    c = sub.add_parser("corpus", help="synthesise the multi-speaker source corpus and adaptation targets (espeak-ng, festival, flite)")
    c.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="output corpus directory")
    c.add_argument("--sentences", type=clikit.int_range(1, 100_000), default=40, help="sentences per source speaker (default 40)")
    c.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of the sentence draw")
    c.add_argument("--voices", choices=("extended", "base"), default="extended",
                   help="extended (default): + RHVoice, Pico, MBROLA, rab, Piper voices (16 source timbres; targets slt, "
                        "joe, clb, es_gbcwmd_m7; needs scripts/enable_contrib_nonfree.sh --install and a piper venv); "
                        "base: espeak-ng/festival/flite only (targets slt, kal_high, es_gbcwmd_m7)")
    c.add_argument("--test-sentences", type=clikit.int_range(1, 500), default=40,
                   help="held-out test sentences per target (default 40)")
    c.add_argument("--no-flite", action="store_true",
                   help="leave out the 14 source speakers from flite's awb and rms voices (the 36-speaker corpus)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_corpus)

    t = sub.add_parser("train", help="train (or resume) the source model on a corpus; writes DIR/model, curves.png")
    t.add_argument("corpus", type=clikit.existing_dir, help="corpus directory from `adaspeech corpus`")
    t.add_argument("-o", "--out", required=True, type=clikit.output_dir,
                   help="run directory (checkpoint/, model/, metrics.jsonl)")
    t.add_argument("--steps", type=clikit.positive_int, default=3000, help="optimizer steps")
    t.add_argument("--max-frames", type=clikit.int_range(100, 10**7), default=4000, help="padded mel frames per batch")
    t.add_argument("--lr", type=clikit.positive_float, default=1e-3, help="peak learning rate")
    t.add_argument("--warmup", type=clikit.positive_int, default=400, help="linear warm-up steps before the cosine")
    t.add_argument("--checkpoint-every", type=clikit.positive_int, default=250,
                   help="steps between checkpoints (resume point), validation and model/ exports")
    t.add_argument("--size", choices=("paper", "small"), default="paper",
                   help="paper (default): d=256, 4 decoder blocks (8 CLNs), 256-dim E^s, 4,352 stored numbers per voice; "
                        "small: d=128, 2 decoder blocks, 5-dim E^s (the models shipped before issue 27)")
    t.add_argument("--decoder-layers", type=clikit.int_range(1, 64), default=None,
                   help="override the size's mel decoder FFT blocks; each has 2 CLNs (default: from --size)")
    t.add_argument("--speaker-dim", type=clikit.int_range(1, 4096), default=None,
                   help="override the size's speaker embedding E^s dimension (default: from --size)")
    t.add_argument("--threads", type=clikit.int_range(1, 1024), default=1, help="torch CPU threads")
    t.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of weights and batches")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=_train)

    a = sub.add_parser("adapt", help="adapt a new voice from ~20 recordings; stores only the adapted parameters",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="TEXTS lines: NAME|sentence  (NAME.wav in --wavs). Audio at any sample rate is resampled to 16 kHz;\n"
                              "digits and symbols are spelled out; unknown words get letter-to-sound phonemes.")
    a.add_argument("model", nargs="?", default=None, type=clikit.existing_dir,
                   help="model directory (default: the shipped source model)")
    a.add_argument("--wavs", required=True, type=clikit.existing_dir, help="directory of the speaker's wav files")
    a.add_argument("--texts", required=True, type=clikit.existing_file, help="file of NAME|text lines")
    a.add_argument("-o", "--out", required=True, type=_safetensors_out, help="voice file to write (.safetensors)")
    a.add_argument("--mode", default="adaspeech", choices=("adaspeech", "speaker", "decoder", "nocln"),
                   help="what to fine-tune: CLN + speaker embedding (AdaSpeech, default) or an ablation")
    a.add_argument("--steps", type=clikit.int_range(1, 100_000), default=150, help="fine-tuning steps")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.set_defaults(func=_adapt)

    s = sub.add_parser("say", help="synthesise text to a wav file")
    s.add_argument("text", help="the sentence to say")
    s.add_argument("-o", "--out", required=True, type=_wav_out, help="output wav (16 kHz)")
    s.add_argument("--voice", default=None,
                   help="shipped voice name, source:SPEAKER, or an adapted .safetensors file (default: the shipped default voice)")
    s.add_argument("--model", default=None, type=clikit.existing_dir, help="model directory (default: the shipped source model)")
    s.add_argument("--speed", type=SPEED, default=1.0, help="speaking-rate factor, 0.25..4 (>1 faster)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_say)

    v = sub.add_parser("voices", help="list shipped voices and source speakers")
    v.add_argument("--model", default=None, type=clikit.existing_dir, help="model directory (default: the shipped source model)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_voices)

    e = sub.add_parser("evaluate", help="MCD (DTW), resemblyzer speaker similarity and pocketsphinx WER on held-out recordings")
    e.add_argument("--voice", default=None, help="voice to evaluate (as for `say`; default: the shipped default voice)")
    e.add_argument("--wavs", required=True, type=clikit.existing_dir, help="directory of the target's real held-out recordings")
    e.add_argument("--texts", required=True, type=clikit.existing_file, help="NAME|text lines for those recordings")
    e.add_argument("--model", default=None, type=clikit.existing_dir, help="model directory (default: the shipped source model)")
    e.add_argument("--ceiling", action="store_true", help="also score the recordings passed through Griffin-Lim")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=_evaluate)
