"""DNA-ESA against bwa mem, minimap2 -ax sr and bowtie2, single- and paired-end, in one run (issues 4, 26).

Three genomes: *K. pneumoniae* HS11286 (Debian kleborate-examples; never seen by the encoder),
phage lambda (bowtie2-examples) and *Staphylococcus aureus* N315 (ragout-examples; phylum
Bacillota, not the Pseudomonadota/Campylobacterota the encoder trained on). For each: 250 bp MiSeq
reads from ``art_illumina -ss MSv3`` (single-end, and pairs with ``-p -m 500 -s 50``), subsampled to
exactly the requested count; every aligner indexes the genome and aligns with ``--threads``
threads under ``/usr/bin/time`` (wall seconds, peak RSS); every SAM is scored against ART's truth
with ``seqverse.genomics.esa.evaluate`` (correct: primary alignment on the true contig and strand,
clip-adjusted start within 20 bp; pair ends scored separately). Also: a MAPQ calibration table
(error rate per MAPQ bin), samtools quickcheck / flagstat / calmd (NM and MD disagreements) /
fixmate on DNA-ESA's SAM, and DNA-ESA's peak memory at two read counts. Commands are niced.
Writes results/esa_vs_aligners.{json,md}.

    python benchmarks/genomics/esa_vs_aligners.py --work runs/esa/bench
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from seqverse.genomics.esa.evaluate import evaluate, read_primary, read_truth

HERE = Path(__file__).parent
GENOMES = {
    "HS11286": ("Klebsiella pneumoniae HS11286 (kleborate-examples)", Path("/usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz")),
    "lambda": ("Enterobacteria phage lambda (bowtie2-examples)", Path("/usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz")),
    "N315": ("Staphylococcus aureus N315 (ragout-examples; phylum Bacillota)", Path("/usr/share/doc/ragout/examples/S.Aureus/references/N315.fasta.gz")),
}
ESA = [sys.executable, "-m", "seqverse.genomics.cli", "esa"]
NICE = ["nice", "-n", "5"]
MAPQ_BINS = ((60, 60), (40, 59), (20, 39), (10, 19), (1, 9), (0, 0))


def timed(cmd: list[str], workdir: Path, stdout: Path | None = None) -> dict:
    """Run ``cmd`` (niced) under /usr/bin/time; returns wall seconds and peak RSS (MiB)."""
    tfile = workdir / "time.txt"
    with open(stdout or os.devnull, "w") as out:
        subprocess.run([*NICE, "/usr/bin/time", "-f", "%e %M", "-o", str(tfile), *cmd], stdout=out, stderr=subprocess.DEVNULL, check=True)
    wall, rss = tfile.read_text().split()[-2:]
    return {"seconds": float(wall), "peak_mib": round(int(rss) / 1024, 1)}


def size_mib(paths) -> float:
    total = 0
    for p in paths:
        p = Path(p)
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return round(total / 2**20, 2)


def _records(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    return [lines[i : i + 4] for i in range(0, len(lines), 4)]


def simulate(ref: Path, n_reads: int, prefix: Path, seed: int, paired: bool = False) -> tuple:
    """ART MSv3 250 bp reads (pairs: insert 500 +- 50), subsampled to exactly ``n_reads`` reads or pairs.

    Returns ``(reads, truth)`` single-end, ``(reads1, reads2, truth)`` paired.
    """
    total = sum(len(line.strip()) for line in open(ref) if not line.startswith(">"))
    fold = (2.3 if paired else 1.15) * n_reads * 250 / total
    cmd = ["art_illumina", "-ss", "MSv3", "-sam", "-i", str(ref), "-l", "250", "-f", f"{fold:.4f}", "-rs", str(seed),
           "-o", str(prefix) + ".all"]
    if paired:
        cmd[1:1] = ["-p", "-m", "500", "-s", "50"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    files = [Path(str(prefix) + ".all1.fq"), Path(str(prefix) + ".all2.fq")] if paired else [Path(str(prefix) + ".all.fq")]
    recs = [_records(f) for f in files]
    if len(recs[0]) < n_reads:
        raise SystemExit(f"ART produced {len(recs[0])} reads, fewer than {n_reads}")
    keep = sorted(random.Random(seed).sample(range(len(recs[0])), n_reads))
    names = {recs[0][i][0][1:].split()[0].removesuffix("/1") for i in keep}
    outs = [Path(f"{prefix}_{j + 1}.fq") if paired else Path(f"{prefix}.fq") for j in range(len(recs))]
    for out, rec in zip(outs, recs):
        out.write_text("".join("\n".join(rec[i]) + "\n" for i in keep))
    truth = Path(str(prefix) + ".truth.sam")
    with open(str(prefix) + ".all.sam") as src, open(truth, "w") as dst:
        for line in src:
            if line.startswith("@") or line.split("\t", 1)[0] in names:
                dst.write(line)
    for p in Path(prefix).parent.glob(Path(prefix).name + ".all*"):
        p.unlink()
    return (*outs, truth)


def build_indexes(ref: Path, work: Path, threads: int, which: list[str]) -> dict:
    t = str(threads)
    out = {}
    for name in which:
        d = work / name
        d.mkdir(exist_ok=True)
        if name == "bwa-mem":
            shutil.copy(ref, d / "ref.fa")
            idx = timed(["bwa", "index", str(d / "ref.fa")], d)
            files = [p for p in d.iterdir() if p.name.startswith("ref.fa.")]
        elif name == "minimap2-sr":
            idx = timed(["minimap2", "-x", "sr", "-d", str(d / "ref.mmi"), str(ref)], d)
            files = [d / "ref.mmi"]
        elif name == "bowtie2":
            idx = timed(["bowtie2-build", "--threads", t, str(ref), str(d / "ref")], d)
            files = [p for p in d.iterdir() if p.suffix == ".bt2"]
        elif name == "seqverse-esa":
            idx = timed([*ESA, "index", str(ref), "-o", str(d / "index"), "--threads", t], d)
            files = [d / "index"]
        else:
            raise SystemExit(f"unknown aligner {name}")
        out[name] = {"index_seconds": idx["seconds"], "index_peak_mib": idx["peak_mib"], "index_mib": size_mib(files)}
    return out


def align(name: str, work: Path, reads: list[Path], threads: int, sam: Path, ref: Path) -> dict:
    d, t = work / name, str(threads)
    if name == "bwa-mem":
        return timed(["bwa", "mem", "-t", t, str(d / "ref.fa"), *map(str, reads)], d, stdout=sam)
    if name == "minimap2-sr":
        return timed(["minimap2", "-ax", "sr", "-t", t, str(d / "ref.mmi"), *map(str, reads)], d, stdout=sam)
    if name == "bowtie2":
        # pairs: -X 1000 (bowtie2's default maximum insert, 500, would call half of ART's 500 +- 50 pairs discordant)
        inputs = ["-U", str(reads[0])] if len(reads) == 1 else ["-X", "1000", "-1", str(reads[0]), "-2", str(reads[1])]
        return timed(["bowtie2", "-p", t, "-x", str(d / "ref"), *inputs, "-S", str(sam)], d)
    return timed([*ESA, "align", str(d / "index"), *map(str, reads), "-o", str(sam), "--threads", t], d)


def mapq_bins(truth_path: Path, sam: Path, tolerance: int = 20) -> list[dict]:
    """Calibration: reads and error rate per MAPQ bin (not cumulative)."""
    truth, calls = read_truth(truth_path), read_primary(sam)
    rows = []
    for lo, hi in MAPQ_BINS:
        n = wrong = 0
        for name, (contig, rev, start) in truth.items():
            call = calls.get(name)
            if call is None or not lo <= call[3] <= hi:
                continue
            n += 1
            wrong += not (call[0] == contig and call[1] == rev and abs(call[2] - start) <= tolerance)
        rows.append({"mapq": f"{lo}" if lo == hi else f"{lo}-{hi}", "reads": n, "wrong": wrong,
                     "error_rate": round(wrong / n, 6) if n else 0.0})
    return rows


def samtools_checks(sam: Path, ref: Path, work: Path) -> dict:
    out = {"quickcheck": subprocess.run(["samtools", "quickcheck", str(sam)]).returncode == 0}
    fs = subprocess.run(["samtools", "flagstat", str(sam)], capture_output=True, text=True)
    out["flagstat"] = fs.returncode == 0 and "in total" in fs.stdout
    out["flagstat_lines"] = [ln for ln in fs.stdout.splitlines() if "in total" in ln or "mapped (" in ln or "properly paired" in ln][:3]
    cm = subprocess.run(["samtools", "calmd", str(sam), str(ref)], capture_output=True, text=True)
    out["calmd_ok"] = cm.returncode == 0
    out["calmd_nm_disagreements"] = cm.stderr.count("different NM")
    out["calmd_md_disagreements"] = cm.stderr.count("different MD")
    fixed = work / "fixmate.sam"
    fm = subprocess.run(["samtools", "fixmate", "-O", "sam", str(sam), str(fixed)], capture_output=True, text=True)
    out["fixmate_ok"] = fm.returncode == 0
    if fm.returncode == 0:
        a = [ln.split("\t")[:9] for ln in sam.read_text().splitlines() if not ln.startswith("@")]
        b = [ln.split("\t")[:9] for ln in fixed.read_text().splitlines() if not ln.startswith("@")]
        out["fixmate_changed_records"] = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
        fixed.unlink()
    return out


def run_genome(key: str, args, which: list[str]) -> dict:
    title, src = GENOMES[key]
    work = Path(args.work).resolve() / key
    work.mkdir(parents=True, exist_ok=True)
    ref = work / f"{key}.fa"
    if not ref.exists():
        opener = lzma.open if src.suffix == ".xz" else gzip.open
        ref.write_text(opener(src, "rt").read())
    n_se, n_pe = (args.lambda_reads, args.lambda_reads // 2) if key == "lambda" else (args.reads, args.reads // 2)
    se = simulate(ref, n_se, work / "se", args.seed) if not (work / "se.fq").exists() else (work / "se.fq", work / "se.truth.sam")
    pe = (simulate(ref, n_pe, work / "pe", args.seed, paired=True) if not (work / "pe_1.fq").exists()
          else (work / "pe_1.fq", work / "pe_2.fq", work / "pe.truth.sam"))
    result = {"genome": title, "se_reads": n_se, "pe_pairs": n_pe, "index": build_indexes(ref, work, args.threads, which)}
    print(json.dumps({key: result["index"]}), flush=True)
    for mode, reads, truth, n in (("se", list(se[:1]), se[1], n_se), ("pe", list(pe[:2]), pe[2], 2 * n_pe)):
        rows = []
        for name in which:
            sam = work / name / f"{mode}.sam"
            run = align(name, work, reads, args.threads, sam, ref)
            score = evaluate(truth, sam)
            rows.append({"aligner": name, "accuracy": score["accuracy"], "mapq20_error_rate": score["mapq20_error_rate"],
                         "mapq20_reads": score["mapq20_reads"], "mapped": score["mapped"], "reads": n,
                         "reads_per_s": round(n / run["seconds"], 1), "align_seconds": run["seconds"],
                         "align_peak_mib": run["peak_mib"], "mapq_bins": mapq_bins(truth, sam)})
            print(json.dumps({key: mode, **{k: v for k, v in rows[-1].items() if k != "mapq_bins"}}), flush=True)
            if name == "seqverse-esa":
                result[f"samtools_{mode}"] = samtools_checks(sam, ref, work / name)
        by = {r["aligner"]: r for r in rows}
        if "bwa-mem" in by and "seqverse-esa" in by:
            result[f"ratio_to_bwa_{mode}"] = round(by["seqverse-esa"]["reads_per_s"] / by["bwa-mem"]["reads_per_s"], 4)
            result[f"accuracy_minus_bwa_{mode}"] = round(100 * (by["seqverse-esa"]["accuracy"] - by["bwa-mem"]["accuracy"]), 3)
        result[mode] = rows
    return result


def markdown(result: dict) -> str:
    lines = [f"{result['threads']} threads each, this machine (2 cores shared with other jobs, every command niced alike); "
             "250 bp reads, `art_illumina -ss MSv3` (pairs `-p -m 500 -s 50`), seed "
             f"{result['seed']}. Accuracy: primary alignment on the true contig and strand, start within 20 bp.", ""]
    for _key, g in result["genomes"].items():
        lines += [f"**{g['genome']}** — {g['se_reads']:,} single reads; {g['pe_pairs']:,} pairs", "",
                  "| aligner | SE accuracy | SE err. MAPQ≥20 | SE reads/s | PE accuracy | PE err. MAPQ≥20 | PE reads/s | index s | index MiB | align peak MiB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        pe = {r["aligner"]: r for r in g["pe"]}
        for r in g["se"]:
            p, ix = pe[r["aligner"]], g["index"][r["aligner"]]
            lines.append(f"| {r['aligner']} | {100 * r['accuracy']:.2f}% | {100 * r['mapq20_error_rate']:.3f}% | {r['reads_per_s']:,.0f} | "
                         f"{100 * p['accuracy']:.2f}% | {100 * p['mapq20_error_rate']:.3f}% | {p['reads_per_s']:,.0f} | "
                         f"{ix['index_seconds']:.1f} | {ix['index_mib']:.1f} | {max(r['align_peak_mib'], p['align_peak_mib']):,.0f} |")
        if "ratio_to_bwa_se" in g:
            lines += ["", f"DNA-ESA vs bwa-mem: accuracy {g['accuracy_minus_bwa_se']:+.2f} (SE) / {g['accuracy_minus_bwa_pe']:+.2f} (PE) points; "
                      f"throughput 1/{1 / g['ratio_to_bwa_se']:.1f} (SE) and 1/{1 / g['ratio_to_bwa_pe']:.1f} (PE) of bwa-mem's."]
        for mode in ("se", "pe"):
            st = g.get(f"samtools_{mode}")
            if st:
                lines.append(f"DNA-ESA {mode.upper()} SAM: quickcheck {'ok' if st['quickcheck'] else 'FAILED'}, flagstat "
                             f"{'ok' if st['flagstat'] else 'FAILED'}, calmd NM/MD disagreements {st['calmd_nm_disagreements']}/"
                             f"{st['calmd_md_disagreements']}, fixmate {'ok' if st['fixmate_ok'] else 'FAILED'} "
                             f"({st.get('fixmate_changed_records', '?')} records changed by it).")
        lines.append("")
    cal = result.get("calibration")
    if cal:
        lines += [f"MAPQ calibration ({cal['genome']}, single + paired reads pooled): reads / wrong per MAPQ bin", "",
                  "| aligner | " + " | ".join(b["mapq"] for b in cal["rows"][0]["bins"]) + " |",
                  "|---|" + "---:|" * len(cal["rows"][0]["bins"])]
        for r in cal["rows"]:
            lines.append(f"| {r['aligner']} | " + " | ".join(f"{b['reads']:,} / {b['wrong']}" for b in r["bins"]) + " |")
        lines.append("")
    mem = result.get("memory")
    if mem:
        lines.append(f"DNA-ESA align peak memory (largest process), {mem['genome']}: {mem['small_reads']:,} reads {mem['small_peak_mib']:.0f} MiB, "
                     f"{mem['large_reads']:,} reads {mem['large_peak_mib']:.0f} MiB.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reads", type=int, default=20_000, help="single-end reads per bacterial genome (half as many pairs)")
    p.add_argument("--lambda-reads", type=int, default=20_000, help="single-end reads for lambda (half as many pairs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", default="runs/esa/bench")
    p.add_argument("--aligners", default="bwa-mem,minimap2-sr,bowtie2,seqverse-esa")
    p.add_argument("--genomes", default="HS11286,lambda,N315")
    p.add_argument("--out", default=str(HERE / "results" / "esa_vs_aligners"))
    args = p.parse_args(argv)
    which = args.aligners.split(",")
    result = {"seed": args.seed, "threads": args.threads, "genomes": {},
              "command": "python benchmarks/genomics/esa_vs_aligners.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    for key in args.genomes.split(","):
        result["genomes"][key] = run_genome(key, args, which)
    first = next(iter(result["genomes"]))
    g = result["genomes"][first]
    pooled = []
    for name in which:
        se = {b["mapq"]: b for b in next(r for r in g["se"] if r["aligner"] == name)["mapq_bins"]}
        pe = next(r for r in g["pe"] if r["aligner"] == name)["mapq_bins"]
        pooled.append({"aligner": name, "bins": [{"mapq": b["mapq"], "reads": b["reads"] + se[b["mapq"]]["reads"],
                                                  "wrong": b["wrong"] + se[b["mapq"]]["wrong"]} for b in pe]})
    result["calibration"] = {"genome": g["genome"], "rows": pooled}
    if "seqverse-esa" in which:  # alignment memory against read count
        work = Path(args.work).resolve() / first
        small = work / "se_small.fq"
        small.write_text("".join(open(work / "se.fq").readlines()[: 4 * 2000]))
        a = align("seqverse-esa", work, [small], args.threads, work / "seqverse-esa" / "small.sam", work / f"{first}.fa")
        result["memory"] = {"genome": first, "small_reads": 2000, "small_peak_mib": a["peak_mib"], "large_reads": g["se_reads"],
                            "large_peak_mib": next(r for r in g["se"] if r["aligner"] == "seqverse-esa")["align_peak_mib"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
