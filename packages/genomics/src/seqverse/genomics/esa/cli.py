"""``seqverse-genomics esa``: train the encoder, index a reference, align reads to SAM, evaluate."""

from __future__ import annotations

import argparse

from seqverse.core import clikit


def _input_file(text: str) -> str:
    """An existing file, or '-' for standard input."""
    return text if text == "-" else clikit.existing_file(text)


def _output_file(text: str) -> str:
    return text if text == "-" else clikit.output_file(text)


def register(subparsers) -> None:
    esa = subparsers.add_parser(
        "esa",
        help="DNA-ESA read aligner: embed reads, search a FAISS store of reference fragments, Smith-Waterman, SAM",
        description="DNA-ESA (Embed-Search-Align). Typical use:\n"
        "  seqverse-genomics esa index ref.fa -o ref.esa\n"
        "  seqverse-genomics esa align ref.esa reads.fq -o out.sam\n"
        "  seqverse-genomics esa evaluate --truth art.sam out.sam",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = esa.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("train", help="train (or resume) the contrastive encoder on genomes")
    p.add_argument("genomes", nargs="+", type=clikit.existing_file, help="FASTA files (.gz/.xz ok) to cut training fragments from")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir,
                   help="output directory; OUT/model is the encoder, rerun to resume")
    p.add_argument("--steps", type=clikit.positive_int, default=1800, help="optimizer steps")
    p.add_argument("--batch-size", type=clikit.int_range(2, 65536), default=64, help="fragment pairs per step")
    p.add_argument("--lr", type=clikit.positive_float, default=1e-3, help="peak learning rate")
    p.add_argument("--k", type=clikit.int_range(1, 12), default=6, help="k-mer length of a token")
    p.add_argument("--pool", type=clikit.int_range(1, 1024), default=8, help="k-mer embeddings averaged per Transformer position")
    p.add_argument("--d-model", type=clikit.int_range(1, 8192), default=64, help="Transformer width")
    p.add_argument("--n-layers", type=clikit.int_range(0, 64), default=2, help="Transformer layers (0: a bag of k-mers)")
    p.add_argument("--d-out", type=clikit.int_range(1, 8192), default=64, help="embedding dimension stored in the vector store")
    p.add_argument("--pool-bins", type=clikit.int_range(0, 1024), default=0,
                   help="knots of the learned pooling profile over relative position (0: plain mean pooling)")
    p.add_argument("--fragment-len", type=clikit.int_range(2, 10**6), default=400, help="bases per training fragment (as `esa index` cuts them)")
    p.add_argument("--stride", type=clikit.nonneg_int, default=150,
                   help="index grid the two neighbour negatives are cut from (0: one negative overlapping under half the read)")
    p.add_argument("--val-genome", type=clikit.existing_file,
                   help="FASTA never trained on: recall@1 on it every --eval-every steps, best weights kept (default: none)")
    p.add_argument("--val-reads", type=clikit.positive_int, default=2000, help="reads sampled from --val-genome")
    p.add_argument("--eval-every", type=clikit.positive_int, default=200, help="steps between validation scores")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed of weights and sampled fragments")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), default=1, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_train)

    p = sub.add_parser("index", help="embed a reference's fragments into a FAISS vector store")
    p.add_argument("reference", type=clikit.existing_file, help="reference FASTA (.gz/.xz ok)")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="index directory to write")
    p.add_argument("--model", type=clikit.existing_dir, help="encoder directory (default: the embedded encoder)")
    p.add_argument("--fragment-len", type=clikit.int_range(2, 10**6), default=400, help="bases per reference fragment")
    p.add_argument("--stride", type=clikit.int_range(1, 10**6), default=150,
                   help="bases between fragment starts; reads up to fragment-len - stride + 1 bases lie inside a fragment")
    p.add_argument("--index-type", default="auto", choices=["auto", "flat", "hnsw", "hnsw-sq8", "ivf", "ivf-sq8"],
                   help="vector store; auto: exact up to 20k vectors (2 per fragment), HNSW above, HNSW over 8-bit vectors above 4M")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), default=2, help="torch and FAISS threads")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_index)

    p = sub.add_parser("align", help="align FASTQ reads (single or paired, as bwa mem takes them) against an index, write SAM")
    p.add_argument("index", type=clikit.existing_dir, help="index directory from `esa index`")
    p.add_argument("reads", type=_input_file, help="FASTQ file (gzip/xz/bz2 detected by content; '-' reads stdin)")
    p.add_argument("mates", nargs="?", type=clikit.existing_file,
                   help="second FASTQ file of a paired-end run (read i pairs with read i of READS)")
    p.add_argument("-p", "--interleaved", action="store_true", help="READS holds pairs, mate 1 then mate 2")
    p.add_argument("-o", "--out", default="-", type=_output_file, help="SAM file to write, written whole or not at all (default '-': stdout)")
    p.add_argument("-R", "--read-group", help=r"read group header line, e.g. '@RG\tID:run1\tSM:sample' (adds RG:Z: to every record)")
    p.add_argument("--top-k", type=clikit.int_range(1, 10_000), default=10,
                   help="nearest fragment vectors (both strands together) whose windows are aligned")
    p.add_argument("-t", "--threads", type=clikit.int_range(1, 1024), default=2, help="worker processes")
    p.add_argument("--batch-size", type=clikit.int_range(1, 10**6), default=1024, help="reads per batch handed to a worker")
    p.add_argument("--json", action="store_true", help="print run statistics as JSON (on stderr when SAM goes to stdout)")
    p.set_defaults(func=_align)

    p = sub.add_parser("evaluate", help="score a SAM file against simulator truth (ART -sam)")
    p.add_argument("sam", type=clikit.existing_file, help="SAM file to score (any aligner's)")
    p.add_argument("--truth", required=True, type=clikit.existing_file, help="ART's -sam output for the same reads")
    p.add_argument("--tolerance", type=clikit.nonneg_int, default=20, help="bases between called and true start")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_evaluate)


def _train(args):
    from seqverse.core import clikit
    from seqverse.genomics.esa.model import EncoderConfig
    from seqverse.genomics.esa.train import TrainConfig, train

    result = train(
        args.genomes,
        args.out,
        EncoderConfig(k=args.k, pool=args.pool, d_model=args.d_model, n_layers=args.n_layers, d_out=args.d_out,
                      pool_bins=args.pool_bins),
        TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, fragment_len=args.fragment_len,
                    stride=args.stride, val_genome=str(args.val_genome) if args.val_genome else None, val_reads=args.val_reads, eval_every=args.eval_every),
        threads=args.threads,
    )
    clikit.emit(result, args.json)


def _index(args):
    from seqverse.core import clikit
    from seqverse.genomics.esa.index import build_index

    meta = build_index(args.reference, args.out, args.model, args.fragment_len, args.stride, args.index_type, args.threads)
    meta = {k: v for k, v in meta.items() if k != "contigs"} | {"contigs": len(meta["contigs"])}
    clikit.emit(meta, args.json)


def _align(args):
    import contextlib
    import sys

    from seqverse.core import clikit
    from seqverse.genomics.esa.align import align_fastq

    result = align_fastq(args.index, args.reads, args.out, args.mates, args.interleaved, args.top_k, args.threads,
                         args.batch_size, args.read_group)
    with contextlib.redirect_stdout(sys.stderr) if args.out in (None, "-") else contextlib.nullcontext():
        clikit.emit(result, args.json)


def _evaluate(args):
    from seqverse.core import clikit
    from seqverse.genomics.esa.evaluate import evaluate

    result = evaluate(args.truth, args.sam, args.tolerance)
    if args.json:
        clikit.emit(result, True)
    else:
        table = result.pop("mapq_table")
        clikit.emit(result, False)
        print()
        clikit.print_table(table)
