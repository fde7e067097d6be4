"""``seqverse-genomics hyena``: pretrain, build-task, finetune, embed, score, generate.

Every command defaults to the embedded model (``--model`` picks another directory, e.g. a local
copy of an official ``LongSafari/hyenadna-*-hf`` checkpoint: config.json + weights).
"""

from __future__ import annotations

import argparse
import json
import sys


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
    p.add_argument("genomes", nargs="+", help="FASTA files (.gz/.xz ok)")
    p.add_argument("-o", "--out", required=True, help="output/resume directory")
    p.add_argument("--records", nargs="*", help="only these record ids")
    p.add_argument("--largest-only", action="store_true", help="only each file's longest record (the chromosome)")
    p.add_argument("--fraction", default="0:0.8", help="part of each record to train on")
    p.add_argument("--val-fraction", default=None, help="part of each record for validation curves, e.g. 0.78:0.8")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--d-inner", type=int, default=None, help="MLP width (default 4 x d_model)")
    p.add_argument("--mixer", choices=["hyena", "attention"], default="hyena", help="attention = Transformer baseline")
    p.add_argument("--emb-dim", type=int, default=None,
                   help="positional features of the implicit filters (odd); default seq_len + 1 = every Fourier band, which "
                   "lets filters express codon (period-3) structure; the official checkpoints use 5")
    p.add_argument("--activation-freq", type=float, default=1.0, help="Sin frequency w of the filter MLP")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--min-seq-len", type=int, default=256, help="first warm-up length")
    p.add_argument("--warmup-fraction", type=float, default=0.1, help="share of steps in the length warm-up")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--tokens-per-step", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--checkpoint-seconds", type=float, default=180.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--max-seconds", type=float, default=None, help="stop (resumably) after this long")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("build-task", formatter_class=fmt, help="build a fine-tuning task directory from data on this machine",
                       description="coding: coding vs intergenic 500 bp windows of HS11286 from prodigal gene calls "
                       "(train from the first 80%%, test from the held-out 20%%). capsule: Klebsiella vs Acinetobacter "
                       "capsule-locus fragments from kaptive-data, split by locus.")
    p.add_argument("task", choices=["coding", "capsule"])
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_build_task)

    p = sub.add_parser("finetune", formatter_class=fmt, help="fine-tune a classification head on a task directory",
                       description="Task directory: train.csv/test.csv (id,sequence,label) or train.fa/test.fa "
                       "(label=X in headers), optional task.json {kind: sequence|token, labels: [...]}.")
    p.add_argument("--task", required=True, help="task directory")
    p.add_argument("--model", help="pretrained model directory (default: embedded)")
    p.add_argument("-o", "--out", help="save the fine-tuned model here")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--pooling", choices=["mean", "last"], default="mean")
    p.add_argument("--both-strands", action="store_true",
                   help="sequence tasks: train on either strand (reverse complement with probability 1/2) and "
                   "predict with the mean over both strands")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("embed", formatter_class=fmt, help="embeddings of FASTA records to .npy or .parquet")
    p.add_argument("fasta")
    p.add_argument("-o", "--out", required=True, help=".npy or .parquet")
    p.add_argument("--model", help="model directory (default: embedded)")
    p.add_argument("--per-position", action="store_true", help="one vector per base instead of the mean")
    p.set_defaults(func=_embed)

    p = sub.add_parser("score", formatter_class=fmt, help="log-likelihood of records, or of variants against a reference",
                       description="Without --vcf: one result per record {id, length, log_likelihood (nats), bits_per_base}, "
                       "long records scored in windows of the model's context. With --vcf FILE (VCF or CHROM:POS:REF>ALT "
                       "lines), FASTA is the reference and each variant gets llr = LL(alt) - LL(ref) over --flank bases each side.")
    p.add_argument("fasta")
    p.add_argument("--model", help="model directory (default: embedded)")
    p.add_argument("--vcf", help="variants: a VCF or CHROM:POS:REF>ALT lines")
    p.add_argument("--flank", type=int, default=None, help="bases either side of a variant (default: model context)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_score)

    p = sub.add_parser("generate", formatter_class=fmt, help="sample DNA (recurrent, cached generation)")
    p.add_argument("--model", help="model directory (default: embedded)")
    p.add_argument("--prompt", default="")
    p.add_argument("-n", "--length", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
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
    from seqverse.genomics.hyenadna.train import PretrainConfig, Trainer, run_pretraining

    _threads(args.threads)
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
    trainer = Trainer(args.out, model_cfg, cfg)
    print(f"training {trainer.model.num_parameters} parameters on {train.length} bases; from step {trainer.step}", file=sys.stderr)
    run_pretraining([trainer], train, val, trainer.pretrain, max_seconds=args.max_seconds)


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
    from seqverse.genomics.hyenadna.data import read_fasta
    from seqverse.genomics.hyenadna.use import embed, load_model, write_embeddings

    records = read_fasta(args.fasta)
    model = load_model(args.model)
    vectors = embed(model, records, args.per_position)
    write_embeddings(args.out, [n for n, _ in records], vectors, args.per_position)
    print(f"{len(records)} records -> {args.out}", file=sys.stderr)


def _score(args):
    from tqdm import tqdm

    from seqverse.core.clikit import print_table
    from seqverse.genomics.hyenadna.data import read_fasta
    from seqverse.genomics.hyenadna.score import parse_variants, record_score, score_ids, score_variants
    from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer
    from seqverse.genomics.hyenadna.use import load_model

    records = read_fasta(args.fasta)  # validates every record before any output
    variants = parse_variants(args.vcf) if args.vcf else None
    model = load_model(args.model)
    if variants is not None:
        rows = score_variants(model, variants, dict(records), args.flank)
    else:
        tok = CharacterTokenizer()
        rows = []
        with tqdm(total=sum(len(s) for _, s in records), unit="base", desc="score", disable=None, file=sys.stderr) as bar:
            for name, seq in records:
                rows.append(record_score(name, score_ids(model, tok.encode(seq, record=name), progress=bar)))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_table(rows)


def _generate(args):
    from seqverse.genomics.hyenadna.use import generate, load_model

    seq = generate(load_model(args.model), args.prompt, args.length, args.temperature, args.top_k, args.seed)
    if args.json:
        print(json.dumps({"prompt": args.prompt, "generated": seq}))
    else:
        print(f">generated prompt_length={len(args.prompt)} length={len(seq)} temperature={args.temperature} seed={args.seed}\n{seq}")
