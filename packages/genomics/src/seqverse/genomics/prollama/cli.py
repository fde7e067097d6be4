"""``seqverse-genomics prollama``: prepare, pretrain-base, train, generate, predict, superfamilies,
score-mutations, evaluate.

Every task command defaults to the embedded model (``--model DIR`` picks another merged directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqverse.core import clikit
from seqverse.genomics.prollama.data import PREDICTION_DECODINGS

DATA_DIR = "runs/prollama/data"


def _protein_prefix(text: str) -> str:
    from seqverse.genomics.prollama.data import PROTEIN_LETTERS

    bad = sorted(set(text.upper()) - PROTEIN_LETTERS)
    if bad:
        raise argparse.ArgumentTypeError(f"position {text.upper().index(bad[0]) + 1}: {bad[0]!r} is not an amino-acid letter")
    return text.upper()


def register(subparsers) -> None:
    g = subparsers.add_parser("prollama", help="ProLLaMA: a general causal LM made a multi-task protein LM (two LoRA stages)",
                              description="ProLLaMA (Lyu et al. 2024): LoRA continual pre-training on protein texts, then "
                              "instruction tuning for superfamily-conditional generation and superfamily prediction.")
    sub = g.add_subparsers(title="commands", metavar="COMMAND")
    fmt = clikit.HelpFormatter

    p = sub.add_parser("prepare", formatter_class=fmt, help="build the data (UniProt, HMMER labels, splits, English text)",
                       description="Labels UniProt (mmseqs2-examples) with hmmsearch (E <= 1e-5) against Pfam HMMs "
                       "(hmmer-examples), hmmbuild profiles of Pfam seeds (python-biopython-doc) and mmseqs2/mafft cluster "
                       "families; splits by 50%%-identity mmseqs2 components; cached in --data-dir.")
    p.add_argument("--data-dir", default=None, type=clikit.output_dir, help=f"where the data files go (default: {DATA_DIR})")
    p.add_argument("--force", action="store_true", help="rebuild even when the data directory is complete")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("pretrain-base", formatter_class=fmt, help="pre-train the small general LLM on English text",
                       description="A byte-level BPE (2,048) and a LLaMA-architecture model trained on Debian English text "
                       "(GCIDE, WordNet glosses, fortunes). Run the same command again to resume.")
    p.add_argument("--data-dir", default=None, type=clikit.existing_dir, help=f"prepared data (english.txt; default: {DATA_DIR})")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="HF model directory to write (and resume)")
    p.add_argument("--steps", type=clikit.positive_int, default=400, help="optimizer steps (cosine schedule length)")
    p.add_argument("--stop-step", type=clikit.positive_int, default=None, help="stop, resumably, at this step")
    p.add_argument("--batch-size", type=clikit.positive_int, default=8, help="256-token blocks per step")
    p.add_argument("--lr", type=clikit.positive_float, default=1e-3, help="peak learning rate")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="seed")
    p.add_argument("--hidden-size", type=clikit.positive_int, default=128, help="model width")
    p.add_argument("--layers", type=clikit.positive_int, default=4, help="decoder layers")
    p.add_argument("--intermediate-size", type=clikit.positive_int, default=None,
                   help="SwiGLU width (default: LLaMA's 8/3 x width, rounded up to a multiple of 8)")
    p.add_argument("--heads", type=clikit.positive_int, default=4, help="attention heads (must divide the width)")
    p.set_defaults(func=_pretrain_base)

    p = sub.add_parser("train", formatter_class=fmt, help="both ProLLaMA stages on any HF causal LM (your own FASTA + labels)",
                       description="Stage 1 (LoRA r=128/alpha=256 + embed_tokens/lm_head, packed Seq=<...> blocks) on --proteins, "
                       "stage 2 (LoRA r=64/alpha=128, answer-only loss) on --labels, each merged. Labels: TSV 'id<TAB>superfamily' "
                       "(ids from --labeled-fasta). Rerun the same command to resume. Add superfamilies by adding labelled rows.")
    p.add_argument("--base", required=True, type=clikit.existing_dir, help="HF causal-LM directory to start from")
    p.add_argument("--proteins", required=True, type=clikit.existing_file, help="stage-1 protein FASTA")
    p.add_argument("--labeled-fasta", required=True, type=clikit.existing_file, help="stage-2 sequences (FASTA)")
    p.add_argument("--labels", required=True, type=clikit.existing_file, help="TSV: id, superfamily")
    p.add_argument("-o", "--out", required=True, type=clikit.output_dir, help="writes OUT/stage1 and OUT/stage2 (merged)")
    p.add_argument("--stage1-steps", type=clikit.positive_int, default=300, help="stage-1 optimizer steps")
    p.add_argument("--stage2-steps", type=clikit.positive_int, default=300, help="stage-2 optimizer steps")
    p.add_argument("--stage1-lr", type=clikit.positive_float, default=5e-5, help="stage-1 lr (official 5e-5)")
    p.add_argument("--stage2-lr", type=clikit.positive_float, default=5e-5, help="stage-2 lr (official 5e-5)")
    p.add_argument("--batch-size", type=clikit.positive_int, default=8, help="blocks / examples per step")
    p.add_argument("--seed", type=clikit.nonneg_int, default=42, help="seed (official 42)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_train)

    p = sub.add_parser("generate", formatter_class=fmt, help="generate proteins (FASTA), optionally of a superfamily",
                       description="Decoding as the paper: temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.2, "
                       "at most 400 new tokens. --rerank N: best-of-N by the model's own superfamily prediction.")
    p.add_argument("--superfamily", default=None, help="superfamily to generate (default: unconditional)")
    p.add_argument("--prefix", default="", type=_protein_prefix, help="residues every sequence starts with")
    p.add_argument("-n", type=clikit.int_range(1, 100_000), default=10, help="number of sequences")
    p.add_argument("-o", "--out", required=True, type=clikit.output_file, help="FASTA to write")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="sampling seed")
    p.add_argument("--temperature", type=clikit.float_range(0, None, lo_open=True), default=0.2, help="sampling temperature")
    p.add_argument("--top-k", type=clikit.positive_int, default=40, help="top-k")
    p.add_argument("--top-p", type=clikit.float_range(0, 1, lo_open=True), default=0.9, help="nucleus top-p")
    p.add_argument("--repetition-penalty", type=clikit.float_range(0, None, lo_open=True), default=1.2, help="repetition penalty")
    p.add_argument("--max-new-tokens", type=clikit.positive_int, default=400, help="tokens generated at most")
    p.add_argument("--rerank", type=clikit.positive_int, default=None, metavar="N",
                   help="with --superfamily: draw N sequences and write the -n that the model's own superfamily "
                        "prediction rates most likely to be of it, best first (ours; README round 6)")
    p.add_argument("--model", type=clikit.existing_dir, default=None, help="merged model directory (default: embedded)")
    p.set_defaults(func=_generate)

    p = sub.add_parser("predict", formatter_class=fmt, help="predict each protein's superfamily",
                       description="[Determine superfamily] Seq=<...>: the known superfamily the model finds most likely; "
                       "score = its probability among the known ones. Sequences are read to their first 400 residues. "
                       "A model directory with answer_prior.json (chosen on validation) divides the answer distribution "
                       "by the model's mean answer over training domains, correcting the label prior of unbalanced "
                       "families; prediction.json names the decoding chosen on validation (--decoding overrides it).")
    p.add_argument("fasta", type=clikit.existing_file, help="protein FASTA")
    p.add_argument("--json", action="store_true", help="one JSON object per line: id, superfamily, score")
    p.add_argument("--decoding", choices=PREDICTION_DECODINGS, default=None,
                   help="argmax: the paper's answer; prior-corrected: the answer with the learned label prior divided "
                        "out; generative: the family under which the generation task finds the sequence most likely "
                        "(Bayes' rule, uniform prior); combined: both views (default: the model's choice)")
    p.add_argument("--no-prior-correction", action="store_true", help="the same as --decoding argmax")
    p.add_argument("--model", type=clikit.existing_dir, default=None, help="merged model directory (default: embedded)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("superfamilies", formatter_class=fmt, help="list the superfamilies the model knows")
    p.add_argument("--json", action="store_true", help="a JSON list")
    p.add_argument("--model", type=clikit.existing_dir, default=None, help="merged model directory (default: embedded)")
    p.set_defaults(func=_superfamilies)

    p = sub.add_parser("score-mutations", formatter_class=fmt, help="fitness = NLL(wild type) - NLL(mutant)",
                       description="MUTATIONS.txt: one mutant per line, substitutions like A23G joined by ':' (1-based).")
    p.add_argument("wild_type", type=clikit.existing_file, help="FASTA with one wild-type protein")
    p.add_argument("mutations", type=clikit.existing_file, help="mutations file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--model", type=clikit.existing_dir, default=None, help="merged model directory (default: embedded)")
    p.set_defaults(func=_score)

    p = sub.add_parser("evaluate", formatter_class=fmt, help="HMMER-judged evaluation with baselines, in one run",
                       description="Conditional generation hit rate (hmmsearch E <= 1e-5), novelty and diversity (parasail), "
                       "unconditional composition, prediction accuracy / macro-F1 on held-out clusters and on hmmer-examples "
                       "seed members; baselines: hmmemit, k-mer logistic regression, order-k Markov perplexity, and "
                       "any --peer model (e.g. protein-only from scratch).")
    p.add_argument("--model", type=clikit.existing_dir, default=None, help="merged model directory (default: embedded)")
    p.add_argument("--peer", action="append", default=[], metavar="NAME=DIR", help="more model directories to evaluate alike")
    p.add_argument("--data-dir", default=None, type=clikit.existing_dir, help=f"prepared data (default: {DATA_DIR})")
    p.add_argument("-n", type=clikit.positive_int, default=20, help="sequences generated per family")
    p.add_argument("--families", default="Pkinase,fn3,RRM_1,SMC_N", help="families to generate")
    p.add_argument("--seed", type=clikit.nonneg_int, default=0, help="sampling seed")
    p.add_argument("--workers", type=clikit.int_range(1, 64), default=1, help="model directories evaluated at once")
    p.add_argument("--split", choices=["test", "valid"], default="test",
                   help="'valid': the selection run (validation clusters, no seed alignments, no test data read; "
                   "use another --seed than the test run)")
    p.add_argument("-o", "--out", type=clikit.output_file, default=None, help="write the results JSON here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_evaluate)


# Flags with a path default take default=None and are resolved in the command (_data_dir): argparse
# runs `type` on a string default after parsing, so a default that does not exist here would be
# reported instead of the user's own mistake (an unknown option, a missing required flag).
EVALUATE_FILES = ("uniprot.fasta", "splits.tsv", "labels.tsv", "external_test.fasta", "superfamilies.hmm")


def _data_dir(given: str | None, needs: tuple[str, ...]) -> Path:
    """--data-dir (or the default), an existing directory holding ``needs``: else one-line InputError."""
    directory = Path(given if given is not None else DATA_DIR)
    hint = "run `seqverse-genomics prollama prepare` first"
    if not directory.is_dir():
        raise clikit.InputError(f"argument --data-dir: {directory}: no such directory ({hint})")
    missing = [name for name in needs if not (directory / name).is_file()]
    if missing:
        raise clikit.InputError(f"argument --data-dir: {directory}: not prepared ProLLaMA data (no {missing[0]}; {hint})")
    return directory


def _model_dir(directory: str, flag: str) -> str:
    """A cheap check (no weights loaded) that ``directory`` looks like a model directory."""
    if not (Path(directory) / "config.json").is_file():
        raise clikit.InputError(f"{flag} {directory}: not a Hugging Face model directory (no config.json)")
    return directory


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise clikit.InputError(f"{path}: not a readable text file") from None


def _load(args):
    from seqverse.genomics.prollama.tasks import ProLLaMA

    return ProLLaMA.from_dir(args.model)


def _prepare(args) -> int:
    from seqverse.genomics.prollama.data import prepare

    clikit.emit(prepare(args.data_dir if args.data_dir is not None else DATA_DIR, force=args.force), args.json)
    return 0


def _pretrain_base(args) -> int:
    import torch

    from seqverse.genomics.prollama.base import BaseConfig, pretrain_base

    if args.stop_step is not None and args.stop_step > args.steps:
        raise clikit.InputError(f"argument --stop-step: {args.stop_step} is beyond --steps {args.steps}")
    if args.hidden_size % args.heads or (args.hidden_size // args.heads) % 2:
        raise clikit.InputError(f"argument --heads: {args.heads} heads need an even head width dividing --hidden-size "
                                f"{args.hidden_size}")
    ff = args.intermediate_size or -(-(8 * args.hidden_size // 3) // 8) * 8
    config = BaseConfig(hidden_size=args.hidden_size, intermediate_size=ff, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads)
    data_dir = _data_dir(args.data_dir, ("english.txt",))
    torch.set_num_threads(1)
    card = pretrain_base(data_dir / "english.txt", args.out, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, stop_step=args.stop_step, config=config)
    print(json.dumps(card, indent=1))
    return 0


def _train(args) -> int:
    from seqverse.core.clikit import InputError
    from seqverse.genomics.prollama.stages import continual_pretrain, instruction_tune, load_causal_lm
    from seqverse.genomics.prollama.tasks import read_proteins

    _model_dir(args.base, "--base")  # inputs are checked before any weights are loaded
    proteins = read_proteins(args.proteins)
    labelled = dict(read_proteins(args.labeled_fasta))
    examples = []
    for n, line in enumerate(_read_text(args.labels).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise InputError(f"{args.labels}: line {n}: expected 'id<TAB>superfamily'")
        if parts[0] not in labelled:
            raise InputError(f"{args.labels}: line {n}: id {parts[0]!r} is not in {args.labeled_fasta}")
        examples.append((parts[0], labelled[parts[0]], parts[1].strip()))
    if not examples:
        raise InputError(f"{args.labels}: no labels")
    load_causal_lm(args.base)  # a bad --base fails before any training
    out = Path(args.out)
    card1 = continual_pretrain(args.base, [f"Seq=<{s}>" for _, s in proteins], out / "stage1", args.stage1_steps,
                               args.batch_size, lr=args.stage1_lr, seed=args.seed)
    if not card1["finished"]:
        print(f"stage 1 stopped at step {card1['steps_done']} (checkpointed): rerun to resume", file=sys.stderr)
        return 1
    card2 = instruction_tune(out / "stage1", examples, out / "stage2", args.stage2_steps, args.batch_size,
                             lr=args.stage2_lr, seed=args.seed)
    if not card2["finished"]:
        print(f"stage 2 stopped at step {card2['steps_done']} (checkpointed): rerun to resume", file=sys.stderr)
        return 1
    clikit.emit({"stage1": card1["final"], "stage2": card2["final"], "model": str(out / "stage2")}, args.json)
    return 0


def _generate(args) -> int:
    from seqverse.genomics.prollama.tasks import Decoding

    if args.rerank is not None and args.superfamily is None:
        raise clikit.InputError("generate: --rerank needs --superfamily (the superfamily to rank for)")
    if args.rerank is not None and args.rerank < args.n:
        raise clikit.InputError(f"generate: --rerank {args.rerank} draws fewer sequences than -n {args.n}")
    model = _load(args)
    if args.superfamily is not None:
        model.check_superfamily(args.superfamily)
    dec = Decoding(args.temperature, args.top_k, args.top_p, args.repetition_penalty, args.max_new_tokens)
    seqs = model.generate(args.n, args.superfamily, args.prefix, args.seed, dec, progress=sys.stderr.isatty(),
                          rerank=args.rerank)
    tag = args.superfamily or "unconditional"
    with clikit.atomic_write(args.out) as handle:
        for i, s in enumerate(seqs, 1):
            handle.write(f">gen{i} superfamily={tag} seed={args.seed}\n{s}\n")
    print(f"{len(seqs)} sequences -> {args.out}", file=sys.stderr)
    return 0


def _predict(args) -> int:
    from seqverse.genomics.prollama.tasks import read_proteins

    records = read_proteins(args.fasta)
    if args.no_prior_correction and args.decoding not in (None, "argmax"):
        raise clikit.InputError(f"predict: --no-prior-correction contradicts --decoding {args.decoding}")
    rows = _load(args).predict(records, progress=sys.stderr.isatty(),
                               decoding="argmax" if args.no_prior_correction else args.decoding)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        clikit.print_table(rows)
    return 0


def _superfamilies(args) -> int:
    names = _load(args).superfamilies
    print(json.dumps(names) if args.json else "\n".join(names))
    return 0


def _score(args) -> int:
    from seqverse.core.clikit import InputError
    from seqverse.genomics.prollama.tasks import read_mutations, read_proteins

    records = read_proteins(args.wild_type)
    if len(records) != 1:
        raise InputError(f"{args.wild_type}: expected one wild-type record, found {len(records)}")
    wt = records[0][1]
    muts = read_mutations(args.mutations, wt)
    clikit.emit(_load(args).score_mutations(wt, muts), args.json)
    return 0


def _evaluate(args) -> int:
    from seqverse.genomics.prollama.evaluate import evaluate

    peers = {}
    for spec in args.peer:
        name, _, directory = spec.partition("=")
        if not name or not directory or not Path(directory).is_dir():
            raise clikit.InputError(f"--peer {spec!r}: expected NAME=DIR with an existing directory")
        peers[name] = _model_dir(directory, "--peer")
    if args.model is not None:
        _model_dir(args.model, "--model")
    data_dir = _data_dir(args.data_dir, EVALUATE_FILES)
    families = [f.strip() for f in args.families.split(",")]
    known = [line.split()[1] for line in _read_text(str(data_dir / "superfamilies.hmm")).splitlines()
             if line.startswith("NAME ") and len(line.split()) > 1]
    for fam in families:
        if fam not in known:
            raise clikit.InputError(f"argument --families: unknown superfamily {fam!r}; known: {', '.join(known) or '(none)'}")
    result = evaluate(args.model, data_dir, families=families, n=args.n, seed=args.seed, peers=peers,
                      workers=args.workers, split_name=args.split)
    if args.out:
        with clikit.atomic_write(args.out) as handle:
            json.dump(result, handle, indent=1)
    print(json.dumps(result, indent=1) if args.json else result["markdown"])
    return 0
