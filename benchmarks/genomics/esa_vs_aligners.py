"""DNA-ESA against bwa mem, minimap2 -ax sr and bowtie2 on simulated MiSeq reads (issue 4).

Simulates ``--reads`` 250 bp reads with ``art_illumina -ss MSv3`` from K. pneumoniae HS11286
(Debian kleborate-examples; never seen by the embedded encoder), indexes the genome with each
aligner, aligns with ``--threads`` threads, and scores every SAM against ART's truth with
``seqverse.genomics.esa.evaluate`` (correct: primary alignment on the true contig and strand,
clip-adjusted start within 20 bp). Index and alignment run under ``/usr/bin/time`` for wall time
and peak memory. Also reported for DNA-ESA: recall@k of the search step and the DNA-ESA-faithful
mode (embedding top-1, no alignment), and the same accuracy on a second species (lambda phage from
Debian bowtie2-examples). Writes results/esa_vs_aligners.{json,md}.

    python benchmarks/genomics/esa_vs_aligners.py                    # ~20 min on 2 cores
    python benchmarks/genomics/esa_vs_aligners.py --reads 5000 --skip-second   # a quick look
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from seqverse.genomics.esa.evaluate import evaluate, retrieval_recall

HERE = Path(__file__).parent
HS11286 = Path("/usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz")
LAMBDA = Path("/usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz")
ESA = [sys.executable, "-m", "seqverse.genomics.cli", "esa"]


def timed(cmd: list[str], workdir: Path, stdout: Path | None = None) -> dict:
    """Run ``cmd`` under /usr/bin/time; returns wall seconds and peak RSS (MiB)."""
    tfile = workdir / "time.txt"
    with open(stdout or os.devnull, "w") as out:
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(tfile), *cmd], stdout=out, stderr=subprocess.DEVNULL, check=True)
    wall, rss = tfile.read_text().split()[-2:]
    return {"seconds": float(wall), "peak_mib": round(int(rss) / 1024, 1)}


def size_mib(paths) -> float:
    total = 0
    for p in paths:
        p = Path(p)
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return round(total / 2**20, 2)


def simulate(ref: Path, n_reads: int, prefix: Path, seed: int) -> tuple[Path, Path]:
    """ART MSv3 single-end 250 bp reads, subsampled to exactly ``n_reads`` (ART's -c is per contig)."""
    total = sum(len(line.strip()) for line in open(ref) if not line.startswith(">"))
    fold = 1.15 * n_reads * 250 / total
    subprocess.run(["art_illumina", "-ss", "MSv3", "-sam", "-i", str(ref), "-l", "250", "-f", f"{fold:.4f}",
                    "-rs", str(seed), "-o", str(prefix) + ".all"], check=True, stdout=subprocess.DEVNULL)
    fq = open(str(prefix) + ".all.fq").read().splitlines()
    records = [fq[i : i + 4] for i in range(0, len(fq), 4)]
    if len(records) < n_reads:
        raise SystemExit(f"ART produced {len(records)} reads, fewer than {n_reads}")
    keep = sorted(random.Random(seed).sample(range(len(records)), n_reads))
    names = {records[i][0][1:].split()[0] for i in keep}
    reads, truth = Path(str(prefix) + ".fq"), Path(str(prefix) + ".truth.sam")
    reads.write_text("".join("\n".join(records[i]) + "\n" for i in keep))
    with open(str(prefix) + ".all.sam") as src, open(truth, "w") as dst:
        for line in src:
            if line.startswith("@") or line.split("\t", 1)[0] in names:
                dst.write(line)
    for ext in (".all.fq", ".all.sam", ".all.aln"):
        Path(str(prefix) + ext).unlink(missing_ok=True)
    return reads, truth


def run_aligners(ref: Path, reads: Path, truth: Path, work: Path, threads: int, which: list[str], esa_model: str | None) -> list[dict]:
    rows = []
    n = sum(1 for _ in open(reads)) // 4
    t = str(threads)
    for name in which:
        d = work / name
        d.mkdir(exist_ok=True)
        sam = d / "out.sam"
        if name == "bwa-mem":
            shutil.copy(ref, d / "ref.fa")
            idx = timed(["bwa", "index", str(d / "ref.fa")], d)
            aln = timed(["bwa", "mem", "-t", t, str(d / "ref.fa"), str(reads)], d, stdout=sam)
            index_files = [p for p in d.iterdir() if p.name.startswith("ref.fa.")]
        elif name == "minimap2-sr":
            idx = timed(["minimap2", "-x", "sr", "-d", str(d / "ref.mmi"), str(ref)], d)
            aln = timed(["minimap2", "-ax", "sr", "-t", t, str(d / "ref.mmi"), str(reads)], d, stdout=sam)
            index_files = [d / "ref.mmi"]
        elif name == "bowtie2":
            idx = timed(["bowtie2-build", "--threads", t, str(ref), str(d / "ref")], d)
            aln = timed(["bowtie2", "-p", t, "-x", str(d / "ref"), "-U", str(reads), "-S", str(sam)], d)
            index_files = [p for p in d.iterdir() if p.suffix == ".bt2"]
        elif name == "seqverse-esa":
            model = ["--model", esa_model] if esa_model else []
            idx = timed([*ESA, "index", str(ref), "-o", str(d / "index"), "--threads", t, *model], d)
            aln = timed([*ESA, "align", str(d / "index"), str(reads), "-o", str(sam), "--threads", t], d)
            index_files = [d / "index" / f for f in ("fragments.faiss", "fragments.npz", "meta.json")] + [d / "index" / "encoder"]
        else:
            raise SystemExit(f"unknown aligner {name}")
        score = evaluate(truth, sam)
        rows.append({
            "aligner": name,
            "accuracy": score["accuracy"],
            "mapq20_error_rate": score["mapq20_error_rate"],
            "mapq20_reads": score["mapq20_reads"],
            "mapped": score["mapped"],
            "reads_per_s": round(n / aln["seconds"], 1),
            "align_seconds": aln["seconds"],
            "align_peak_mib": aln["peak_mib"],
            "index_seconds": idx["seconds"],
            "index_mib": size_mib(index_files),
            "index_peak_mib": idx["peak_mib"],
            "mapq_table": score["mapq_table"],
        })
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "mapq_table"}), flush=True)
    return rows


def samtools_checks(sam: Path, work: Path) -> dict:
    out = {}
    out["quickcheck"] = subprocess.run(["samtools", "quickcheck", str(sam)]).returncode == 0
    fs = subprocess.run(["samtools", "flagstat", str(sam)], capture_output=True, text=True)
    out["flagstat"] = fs.returncode == 0 and "in total" in fs.stdout
    out["flagstat_first_lines"] = fs.stdout.splitlines()[:2] + [ln for ln in fs.stdout.splitlines() if "mapped (" in ln][:1]
    so = subprocess.run(["samtools", "sort", "-@", "2", "-o", str(work / "sorted.bam"), str(sam)], capture_output=True, text=True)
    out["sort"] = so.returncode == 0 and subprocess.run(["samtools", "quickcheck", str(work / "sorted.bam")]).returncode == 0
    return out


def markdown(result: dict) -> str:
    lines = [
        f"Reads: {result['reads']:,} × 250 bp, `art_illumina -ss MSv3` (seed {result['seed']}) from *K. pneumoniae* HS11286 "
        f"(whole genome searched); {result['threads']} threads each; this machine (2 cores, shared).",
        "",
        "| aligner | accuracy | error rate, MAPQ ≥ 20 | reads at MAPQ ≥ 20 | reads/s | index s | index MiB | peak MiB (align) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["main"]:
        lines.append(
            f"| {r['aligner']} | {100 * r['accuracy']:.2f}% | {100 * r['mapq20_error_rate']:.3f}% | {r['mapq20_reads']:,} | "
            f"{r['reads_per_s']:,.0f} | {r['index_seconds']:.1f} | {r['index_mib']:.1f} | {r['align_peak_mib']:,.0f} |"
        )
    if "faithful" in result:
        f = result["faithful"]
        lines += ["", f"DNA-ESA-faithful mode (embedding top-1, no alignment): {100 * f['recall@1']:.2f}% of reads placed in a "
                  f"fragment that holds them, on the right strand.", "",
                  "| retrieval | k=1 | k=5 | k=20 | k=50 |", "|---|---:|---:|---:|---:|",
                  "| recall@k, both strands ranked together | " + " | ".join(f"{100 * f[f'recall@{k}']:.2f}%" for k in (1, 5, 20, 50)) + " |",
                  "| recall@k per strand (what `esa align` searches) | " + " | ".join(f"{100 * f[f'recall@{k}_per_strand']:.2f}%" for k in (1, 5, 20, 50)) + " |"]
    if "second" in result:
        s = result["second"]
        lines += ["", f"Second species, {s['genome']} ({s['reads']:,} reads, same simulator):", "",
                  "| aligner | accuracy | error rate, MAPQ ≥ 20 | reads/s |", "|---|---:|---:|---:|"]
        lines += [f"| {r['aligner']} | {100 * r['accuracy']:.2f}% | {100 * r['mapq20_error_rate']:.3f}% | {r['reads_per_s']:,.0f} |" for r in s["rows"]]
    if "ratio_to_bwa" in result:
        lines += ["", f"DNA-ESA throughput / bwa-mem throughput: 1/{1 / result['ratio_to_bwa']:.1f} ({result['ratio_to_bwa']:.3f})."]
    if "samtools" in result:
        st = result["samtools"]
        lines += [f"DNA-ESA SAM: samtools quickcheck {'ok' if st['quickcheck'] else 'FAILED'}, flagstat {'ok' if st['flagstat'] else 'FAILED'}, "
                  f"sort {'ok' if st['sort'] else 'FAILED'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reads", type=int, default=100_000)
    p.add_argument("--second-reads", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", default="runs/esa/bench")
    p.add_argument("--aligners", default="bwa-mem,minimap2-sr,bowtie2,seqverse-esa")
    p.add_argument("--esa-model", help="encoder directory (default: the embedded one)")
    p.add_argument("--skip-second", action="store_true")
    p.add_argument("--skip-recall", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "esa_vs_aligners"))
    args = p.parse_args(argv)

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ref = work / "HS11286.fa"
    if not ref.exists():
        ref.write_text(lzma.open(HS11286, "rt").read())
    reads, truth = work / "reads.fq", work / "reads.truth.sam"
    if not (reads.exists() and truth.exists() and sum(1 for _ in open(reads)) == 4 * args.reads):
        reads, truth = simulate(ref, args.reads, work / "reads", args.seed)
    result = {"reads": args.reads, "seed": args.seed, "threads": args.threads,
              "command": "python benchmarks/genomics/esa_vs_aligners.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    result["main"] = run_aligners(ref, reads, truth, work, args.threads, args.aligners.split(","), args.esa_model)
    by = {r["aligner"]: r for r in result["main"]}
    if "seqverse-esa" in by:
        esa_sam = work / "seqverse-esa" / "out.sam"
        result["samtools"] = samtools_checks(esa_sam, work / "seqverse-esa")
        if "bwa-mem" in by:
            result["ratio_to_bwa"] = round(by["seqverse-esa"]["reads_per_s"] / by["bwa-mem"]["reads_per_s"], 4)
        if not args.skip_recall:
            result["faithful"] = retrieval_recall(work / "seqverse-esa" / "index", reads, truth, threads=args.threads)
            print(json.dumps(result["faithful"]), flush=True)
    if not args.skip_second:
        w2 = work / "lambda"
        w2.mkdir(exist_ok=True)
        ref2 = w2 / "lambda.fa"
        import gzip
        ref2.write_text(gzip.open(LAMBDA, "rt").read())
        r2, t2 = simulate(ref2, args.second_reads, w2 / "reads", args.seed)
        rows = run_aligners(ref2, r2, t2, w2, args.threads, [a for a in ("bwa-mem", "seqverse-esa") if a in by], args.esa_model)
        result["second"] = {"genome": "Enterobacteria phage lambda (NC_001416.1, 48,502 bp; Debian bowtie2-examples)",
                            "reads": args.second_reads, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
