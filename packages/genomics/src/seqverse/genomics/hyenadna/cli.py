"""``seqverse-genomics hyena``: pretrain, build-task, finetune, embed, score, generate.

Every command defaults to the embedded model (``--model`` picks another directory, e.g. a local
copy of an official ``LongSafari/hyenadna-*-hf`` checkpoint: config.json + weights).
"""

from __future__ import annotations

import argparse
import json
import sys

from seqverse.core import clikit

MAX_GENERATE = 10_000  # bases per `generate` call: each recurrent step costs O(bases so far)


def _fraction(text: str) -> str:
    """argparse type: START:END fractions of each record, 0 <= START < END <= 1."""
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END, e.g. 0:0.8, got {text!r}") from None
    if not 0 <= lo < hi <= 1:
        raise argparse.ArgumentTypeError(f"need 0 <= START < END <= 1, got {text!r}")
    return text


def _odd_emb_dim(text: str) -> int:
    value = clikit.int_range(3, 2**20)(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd (time + cosine/sine pairs), got {value}")
    return value


def _dna(text: str) -> str:
    """argparse type: a DNA prompt (A/C/G/T/N, any case; may be empty)."""
    bad = sorted(set(text.upper()) - set("ACGTN"))
    if bad:
        raise argparse.ArgumentTypeError(f"only A, C, G, T, N allowed, got {''.join(bad)!r}")
    return text


def _embedding_path(text: str) -> str:
    clikit.output_file(text)
    if not text.endswith((".npy", ".parquet")):
        raise argparse.ArgumentTypeError(f"{text}: must end in .npy or .parquet")
    return text


def _bos(args) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[args.bos]


BOS_HELP = ("start each window with [BOS] (how seqverse models are trained) or not (the official HyenaDNA "
            "convention: the first base is context only); auto = the model's own convention (official "
            "checkpoints: no)")


def register(subparsers) -> None:
    g = subparsers.add_parser("hyena", help="HyenaDNA long-context DNA language model",
                              description="HyenaDNA (Nguyen et al. 2023): next-nucleotide language model built on Hyena operators.")
    sub = g.add_subparsers(title="commands", metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("pretrain", formatter_class=fmt, help="pretrain on FASTA with sequence-length warm-up (resumes DIR)",
                       description="Next-nucleotide pretraining with the HyenaDNA sequence-length warm-up "
                       "(lengths double from --min-seq-len to --seq-len, tokens per step fixed), cosine learning rate, "
                       "checkpoints every --checkpoint-seconds. Run the same command again to resume. "
                       "Example (the embedded model): hyena pretrain Klebs_HS11286.fna.xz --largest-only --fraction 0:0.78 "
                       "--val-fraction 0.78:0.8 -o runs/hyenadna/tiny")
    p.add_argument("genomes", nargs="+", type=clikit.existing_file, help="FASTA files (.gz/.xz ok)")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="output/resume directory")
    p.add_argument("--records", nargs="*", help="only these record ids (default: all)")
    p.add_argument("--largest-only", action="store_true", help="only each file's longest record (the chromosome)")
    p.add_argument("--fraction", default="0:0.8", type=_fraction, help="part START:END of each record to train on")
    p.add_argument("--val-fraction", default=None, type=_fraction,
                   help="part of each record for validation curves, e.g. 0.78:0.8 (default: none)")
    p.add_argument("--d-model", type=clikit.int_range(1, 8192), default=128, help="model width")
    p.add_argument("--n-layer", type=clikit.int_range(1, 256), default=2, help="Hyena blocks")
    p.add_argument("--d-inner", type=clikit.int_range(1, 65536), default=None, help="MLP width (default 4 x d_model)")
    p.add_argument("--mixer", choices=["hyena", "attention"], default="hyena", help="attention = Transformer baseline")
    p.add_argument("--emb-dim", type=_odd_emb_dim, default=None,
                   help="positional features of the implicit filters (odd); default seq_len + 1 = every Fourier band, which "
                   "lets filters express codon (period-3) structure; the official checkpoints use 5")
    p.add_argument("--activation-freq", type=clikit.positive_float, default=1.0, help="Sin frequency w of the filter MLP")
    p.add_argument("--seq-len", type=clikit.int_range(2, 2**20), default=1024, help="training context (bases)")
    p.add_argument("--min-seq-len", type=clikit.int_range(2, 2**20), default=256, help="first warm-up length")
    p.add_argument("--warmup-fraction", type=clikit.probability, default=0.1, help="share of steps in the length warm-up")
    p.add_argument("--steps", type=clikit.positive_int, default=2500, help="optimizer steps")
    p.add_argument("--tokens-per-step", type=clikit.positive_int, default=4096,
                   help="tokens per optimizer step (at least --seq-len)")
    p.add_argument("--lr", type=clikit.positive_float, default=1e-3, help="peak learning rate")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of weights and sampled windows")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass")
    p.add_argument("--checkpoint-seconds", type=clikit.positive_float, default=180.0,
                   help="seconds between resumable checkpoints")
    p.add_argument("--eval-every", type=clikit.positive_int, default=250, help="steps between validation evaluations")
    p.add_argument("--max-seconds", type=clikit.nonneg_float, default=None,
                   help="stop (resumably) after this long (default: no limit)")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--sp-size", type=clikit.positive_int, default=1,
                   help="under torchrun: ranks that split each window (sequence parallel); the rest split the batch")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("build-task", formatter_class=fmt, help="build a fine-tuning task directory from data on this machine",
                       description="coding: coding vs intergenic 500 bp windows of HS11286 from prodigal gene calls "
                       "(train from the first 80%%, test from the held-out 20%%). capsule: Klebsiella vs Acinetobacter "
                       "capsule-locus fragments from kaptive-data, split by locus.")
    p.add_argument("task", choices=["coding", "capsule"], help="which task to build")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="task directory to write")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of the window sampling")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_build_task)

    p = sub.add_parser("finetune", formatter_class=fmt, help="fine-tune a classification head on a task directory",
                       description="Task directory: train.csv/test.csv (id,sequence,label) or train.fa/test.fa "
                       "(label=X in headers), optional task.json {kind: sequence|token, labels: [...]}.")
    p.add_argument("--task", required=True, type=clikit.existing_dir, help="task directory")
    p.add_argument("--model", type=clikit.existing_dir, help="pretrained model directory (default: embedded)")
    p.add_argument("-o", "--out", type=clikit.output_dir, help="save the fine-tuned model here (default: not saved)")
    p.add_argument("--epochs", type=clikit.int_range(1, 10_000), default=3, help="passes over the training set")
    p.add_argument("--batch-size", type=clikit.int_range(1, 65536), default=16, help="records per step")
    p.add_argument("--lr", type=clikit.positive_float, default=5e-4, help="learning rate")
    p.add_argument("--pooling", choices=["mean", "last"], default="mean", help="sequence representation for the head")
    p.add_argument("--both-strands", action="store_true",
                   help="sequence tasks: train on either strand (reverse complement with probability 1/2) and "
                   "predict with the mean over both strands")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of the head and the shuffling")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("embed", formatter_class=fmt, help="embeddings of FASTA records to .npy or .parquet")
    p.add_argument("fasta", type=clikit.existing_file, help="FASTA file (.gz/.xz ok)")
    p.add_argument("-o", "--out", required=True, type=_embedding_path, help="output file, .npy or .parquet")
    p.add_argument("--model", type=clikit.existing_dir, help="model directory (default: embedded)")
    p.add_argument("--per-position", action="store_true", help="one vector per base instead of the mean")
    p.set_defaults(func=_embed)

    p = sub.add_parser("score", formatter_class=fmt, help="log-likelihood of records, or of variants against a reference",
                       description="Without --vcf: one result per record {id, length, log_likelihood (nats), bits_per_base}, "
                       "long records scored in windows of the model's context. With --vcf FILE (VCF or CHROM:POS:REF>ALT "
                       "lines), FASTA is the reference and each variant gets llr = LL(alt) - LL(ref) over --flank bases each side.")
    p.add_argument("fasta", type=clikit.existing_file, help="FASTA file (.gz/.xz ok); the reference with --vcf")
    p.add_argument("--model", type=clikit.existing_dir, help="model directory (default: embedded)")
    p.add_argument("--vcf", type=clikit.existing_file, help="variants: a VCF (.vcf, .vcf.gz) or CHROM:POS:REF>ALT lines")
    p.add_argument("--flank", type=clikit.int_range(1, 10**6), default=None,
                   help="bases either side of a variant (default: model context)")
    p.add_argument("--bos", choices=["auto", "yes", "no"], default="auto", help=BOS_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_score)

    p = sub.add_parser("generate", formatter_class=fmt, help="sample DNA (recurrent, cached generation)")
    p.add_argument("--model", type=clikit.existing_dir, help="model directory (default: embedded)")
    p.add_argument("--prompt", default="", type=_dna, help="DNA to continue (A/C/G/T/N; default: none)")
    p.add_argument("-n", "--length", type=clikit.int_range(1, MAX_GENERATE), default=200,
                   help=f"bases to generate, 1..{MAX_GENERATE}")
    p.add_argument("--temperature", type=clikit.float_range(0, 100), default=1.0,
                   help="sampling temperature; 0 = always the most likely base")
    p.add_argument("--top-k", type=clikit.int_range(1, 4), default=None,
                   help="sample among the k most likely bases, 1..4 (default: all four)")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="sampling seed")
    p.add_argument("--bos", choices=["auto", "yes", "no"], default="auto", help=BOS_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_generate)
    g.set_defaults(func=lambda args: g.print_help())


def _threads(n):
    if n:
        import torch

        torch.set_num_threads(n)


def _pretrain(args):
    import torch

    from seqverse.genomics.hyenadna.data import load_genome, parse_fraction
    from seqverse.genomics.hyenadna.model import HyenaDNAConfig
    from seqverse.genomics.hyenadna.train import PretrainConfig, load_or_create, pretrain

    _threads(args.threads)
    if args.min_seq_len > args.seq_len:
        raise clikit.InputError(f"--min-seq-len {args.min_seq_len} is longer than --seq-len {args.seq_len}")
    if args.tokens_per_step < args.seq_len:
        raise clikit.InputError(f"--tokens-per-step {args.tokens_per_step} is less than one --seq-len {args.seq_len} window")
    train = load_genome(args.genomes, args.records, parse_fraction(args.fraction), args.largest_only)
    val = load_genome(args.genomes, args.records, parse_fraction(args.val_fraction), args.largest_only) if args.val_fraction else None
    cfg = PretrainConfig(steps=args.steps, seq_len=args.seq_len, min_seq_len=args.min_seq_len, warmup_fraction=args.warmup_fraction,
                         tokens_per_step=args.tokens_per_step, lr=args.lr, seed=args.seed,
                         checkpoint_seconds=args.checkpoint_seconds, eval_every=args.eval_every)
    torch.manual_seed(args.seed)
    emb_dim = args.emb_dim or args.seq_len + 1 + args.seq_len % 2
    model_cfg = HyenaDNAConfig(d_model=args.d_model, n_layer=args.n_layer, d_inner=args.d_inner, max_seq_len=args.seq_len, emb_dim=emb_dim,
                               activation_freq=args.activation_freq,
                               embed_dropout=0.0, mixer=args.mixer, gradient_checkpointing=args.gradient_checkpointing)
    from seqverse.core.train import init_distributed, make_mesh

    init_distributed()  # a no-op unless launched by torchrun
    try:
        mesh = make_mesh(args.sp_size)
    except ValueError as err:
        raise clikit.InputError(str(err)) from err
    model = load_or_create(args.out, model_cfg)
    print(f"training {model.num_parameters} parameters on {train.length} bases", file=sys.stderr)
    pretrain(model, args.out, train, val, cfg, max_seconds=args.max_seconds, mesh=mesh)


def _build_task(args):
    from seqverse.core.clikit import emit
    from seqverse.genomics.hyenadna.tasks import build_capsule_task, build_coding_task

    meta = (build_coding_task if args.task == "coding" else build_capsule_task)(args.out, seed=args.seed)
    emit(meta if args.json else {k: json.dumps(v) if isinstance(v, dict) else v for k, v in meta.items()}, args.json)


def _finetune(args):
    from seqverse.core.clikit import emit
    from seqverse.genomics.hyenadna.finetune import finetune
    from seqverse.genomics.hyenadna.tasks import load_task
    from seqverse.genomics.hyenadna.use import DEFAULT_MODEL

    _threads(args.threads)
    task = load_task(args.task)
    result = finetune(args.model or DEFAULT_MODEL, task, args.out, args.epochs, args.batch_size, args.lr, pooling=args.pooling, seed=args.seed,
                      rc_augment=args.both_strands, both_strands=args.both_strands)
    emit(result, args.json)


def _embed(args):
    from seqverse.genomics.hyenadna.data import read_records
    from seqverse.genomics.hyenadna.use import embed, load_model, write_embeddings

    records = read_records(args.fasta)
    model = load_model(args.model)
    vectors = embed(model, records, args.per_position)
    write_embeddings(args.out, [n for n, _ in records], vectors, args.per_position)
    print(f"{len(records)} records -> {args.out}", file=sys.stderr)


def _score(args):
    from tqdm import tqdm

    from seqverse.core.clikit import print_table
    from seqverse.genomics.hyenadna.data import read_records
    from seqverse.genomics.hyenadna.score import parse_variants, record_score, score_ids, score_variants
    from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer
    from seqverse.genomics.hyenadna.use import load_model, uses_bos

    records = read_records(args.fasta)  # validates every record before any output
    variants = parse_variants(args.vcf) if args.vcf else None
    model = load_model(args.model)
    bos = uses_bos(model, _bos(args))
    if variants is not None:
        rows = score_variants(model, variants, dict(records), args.flank, bos=bos)
    else:
        short = [name for name, seq in records if len(seq) < 2] if not bos else []
        if short:
            raise clikit.InputError(f"{args.fasta}: record {short[0]!r} has 1 base; without [BOS] a record needs 2")
        tok = CharacterTokenizer()
        rows = []
        with tqdm(total=sum(len(s) for _, s in records), unit="base", desc="score", disable=None, file=sys.stderr) as bar:
            for name, seq in records:
                logp = score_ids(model, tok.encode(seq, record=name), progress=bar, bos=bos)
                rows.append(record_score(name, logp))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_table(rows)


def _generate(args):
    from seqverse.genomics.hyenadna.use import generate, load_model, uses_bos

    model = load_model(args.model)
    bos = uses_bos(model, _bos(args))
    if not bos and not args.prompt:
        raise clikit.InputError("--prompt: give at least one base when the model does not use [BOS] (--bos no)")
    seq = generate(model, args.prompt, args.length, args.temperature, args.top_k, args.seed, bos=bos)
    if args.json:
        print(json.dumps({"prompt": args.prompt, "generated": seq}))
    else:
        print(f">generated prompt_length={len(args.prompt)} length={len(seq)} temperature={args.temperature} seed={args.seed}\n{seq}")
