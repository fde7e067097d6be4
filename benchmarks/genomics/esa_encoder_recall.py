"""Does the learned DNA-ESA encoder earn its place? Retrieval recall on a genome no encoder saw (issue 26).

External test genome: *Streptococcus suis* SC84 from Debian ``abacas-examples`` (phylum Bacillota;
never used for training or tuning). ``--reads`` 250 bp MiSeq reads (``art_illumina -ss MSv3``) are
embedded and searched against an exact (flat) store of both strands' fragments, so the numbers
measure the encoder, not the ANN store. recall@k: the fragment holding the read's true span, on
its true strand, is among the top k vectors; reported per strand of the read.

Encoders compared (same fragments, same reads):
- ``trained-bag``: the k-mer-bag encoder (``n_layers 0``) trained contrastively (``--trained``);
- ``random-bag``: the same network at random initialisation (the ablation);
- ``count-sketch``: an explicit k-mer sketch, each 6-mer hashed to one of 64 coordinates with a
  random sign (feature hashing; no learning);
- ``transformer``: the earlier 2-layer Transformer encoder (``--transformer``), if given.

    python benchmarks/genomics/esa_encoder_recall.py --trained PKG/esa/assets/encoder \
        --transformer runs/esa/old_encoder --work runs/esa/recall
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ABACAS = Path("/usr/share/doc/abacas-examples/SS_SC84.dna.gz")
sys.path.insert(0, str(HERE))


def random_bag(out: Path, k: int, d_out: int, seed: int = 0) -> Path:
    import torch

    from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig

    torch.manual_seed(seed)
    DNAEncoder(EncoderConfig(k=k, n_layers=0, d_model=64, d_out=d_out)).save_pretrained(out)
    return out


def count_sketch(out: Path, k: int, d_out: int, seed: int = 0) -> Path:
    """A k-mer-bag encoder whose table is feature hashing: E = one signed one-hot row per k-mer, P = I."""
    import torch

    from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig

    model = DNAEncoder(EncoderConfig(k=k, n_layers=0, d_model=d_out, d_out=d_out))
    rng = np.random.default_rng(seed)
    table = np.zeros((4**k + 1, d_out), np.float32)
    table[np.arange(4**k + 1), rng.integers(0, d_out, 4**k + 1)] = rng.choice([-1.0, 1.0], 4**k + 1)
    table[4**k] = 0.0  # k-mers holding an N carry nothing
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(table))
        model.proj.weight.copy_(torch.eye(d_out))
    model.save_pretrained(out)
    return out


def main(argv=None) -> int:
    from esa_vs_aligners import simulate

    from seqverse.genomics.esa.evaluate import retrieval_recall
    from seqverse.genomics.esa.index import build_index

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trained", required=True, help="trained k-mer-bag encoder directory")
    p.add_argument("--transformer", help="a Transformer encoder directory to compare as well")
    p.add_argument("--reads", type=int, default=5000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--work", default="runs/esa/recall")
    p.add_argument("--out", default=str(HERE / "results" / "esa_encoder_recall"))
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ref = work / "SS_SC84.fa"
    if not ref.exists():
        ref.write_text(gzip.open(ABACAS, "rt").read())
    reads, truth = work / "reads.fq", work / "reads.truth.sam"
    if not reads.exists():
        reads, truth = simulate(ref, args.reads, work / "reads", args.seed)
    cfg = json.loads((Path(args.trained) / "config.json").read_text())
    encoders = {"trained-bag": Path(args.trained),
                "random-bag": random_bag(work / "random_bag", cfg["k"], cfg["d_out"]),
                "count-sketch": count_sketch(work / "count_sketch", cfg["k"], cfg["d_out"])}
    if args.transformer:
        encoders["transformer"] = Path(args.transformer)
    rows = []
    for name, model in encoders.items():
        idx = work / f"idx_{name}"
        if not (idx / "meta.json").exists():
            build_index(ref, idx, model, index_type="flat", threads=1, progress=False)
        r = retrieval_recall(idx, reads, truth, ks=(1, 5, 10), threads=1)
        rows.append({"encoder": name, **r})
        print(json.dumps(rows[-1]), flush=True)
    result = {"genome": "Streptococcus suis SC84 (Debian abacas-examples SS_SC84.dna.gz)", "reads": args.reads,
              "seed": args.seed, "store": "flat (exact)", "rows": rows,
              "command": "python benchmarks/genomics/esa_encoder_recall.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Reads: {args.reads:,} x 250 bp (`art_illumina -ss MSv3`, seed {args.seed}) from {result['genome']}, "
             "never used in training; exact (flat) store of both strands' 400 bp fragments every 150 bp.", "",
             "| encoder | recall@1 fwd | recall@1 rev | recall@5 fwd | recall@5 rev | recall@10 |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['encoder']} | {100 * r['recall@1_fwd']:.2f}% | {100 * r['recall@1_rev']:.2f}% | "
                     f"{100 * r['recall@5_fwd']:.2f}% | {100 * r['recall@5_rev']:.2f}% | {100 * r['recall@10']:.2f}% |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
