"""DNA-ESA end to end on lambda phage (a species the encoder never saw): single and paired reads, SAM
that samtools accepts (quickcheck, flagstat, calmd with 0 NM/MD disagreements, fixmate), accuracy."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seqverse.genomics.cli import main
from seqverse.genomics.esa.evaluate import evaluate

DATA = __import__("pathlib").Path(__file__).parents[2] / "data" / "esa"
needs_samtools = pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools not installed")


@pytest.fixture(scope="module")
def lambda_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("esa")
    assert main(["esa", "index", str(DATA / "lambda_virus.fa.gz"), "-o", str(tmp / "idx"), "--threads", "1"]) == 0
    assert main(["esa", "align", str(tmp / "idx"), str(DATA / "lambda_reads.fq.gz"), "-o", str(tmp / "out.sam"), "--threads", "2"]) == 0
    assert main(["esa", "align", str(tmp / "idx"), str(DATA / "lambda_pe_1.fq.gz"), str(DATA / "lambda_pe_2.fq.gz"),
                 "-o", str(tmp / "pe.sam"), "-t", "1", "-R", r"@RG\tID:run7\tSM:phage"]) == 0
    with gzip.open(DATA / "lambda_virus.fa.gz", "rt") as src:
        (tmp / "ref.fa").write_text(src.read())
    return tmp


def _body(path):
    return [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("@")]


def test_index_holds_both_strands(lambda_run):
    from seqverse.genomics.esa.index import load_index
    from seqverse.genomics.io import reverse_complement

    index = load_index(lambda_run / "idx")
    assert index.meta["fragments"] == len(index.frag_start) and index.faiss_index.ntotal == 2 * index.meta["fragments"]
    assert index.fetch(0, 0, 10) == (lambda_run / "ref.fa").read_text().split("\n", 1)[1][:10]
    # a fragment retrieves its own vector first (2 f); its reverse complement the odd one (2 f + 1)
    seqs = [index.fetch(0, s, s + n) for s, n in zip(index.frag_start[:20], index.frag_len[:20])]
    _, ids = index.search(index.encoder.embed_sequences(seqs), 1)
    assert (ids[:, 0] == 2 * np.arange(20)).all()
    _, ids = index.search(index.encoder.embed_sequences([reverse_complement(s) for s in seqs]), 1)
    assert (ids[:, 0] == 2 * np.arange(20) + 1).all()
    assert oct(os.stat(lambda_run / "idx" / "meta.json").st_mode & 0o777) == "0o644"


def test_single_end_accuracy_and_header(lambda_run):
    result = evaluate(DATA / "lambda_reads_truth.sam.gz", lambda_run / "out.sam")
    assert result["reads"] == 120 and result["missing_from_sam"] == 0
    assert result["accuracy"] >= 0.98 and result["mapq20_wrong"] == 0
    header = [line for line in (lambda_run / "out.sam").read_text().splitlines() if line.startswith("@")]
    assert header[1].startswith("@SQ\tSN:gi|9626243|ref|NC_001416.1|\tLN:48502")
    assert any(line.startswith("@PG\tID:seqverse-esa") for line in header)
    assert oct(os.stat(lambda_run / "out.sam").st_mode & 0o777) == "0o644"
    assert all(any(t.startswith("MD:Z:") for t in f[11:]) for f in _body(lambda_run / "out.sam") if not int(f[1]) & 4)


def test_paired_end_flags_mates_and_accuracy(lambda_run):
    body = _body(lambda_run / "pe.sam")
    assert len(body) == 120
    for r1, r2 in zip(body[0::2], body[1::2]):
        f1, f2 = int(r1[1]), int(r2[1])
        assert r1[0] == r2[0] and f1 & 64 and f2 & 128 and f1 & 1 and f2 & 1
        if f1 & 2:  # proper: FR, mate fields point at each other, TLENs cancel
            assert (f1 & 16) != (f2 & 16) and bool(f1 & 32) == bool(f2 & 16)
            assert r1[6] == "=" and int(r1[7]) == int(r2[3]) and int(r2[7]) == int(r1[3])
            assert int(r1[8]) == -int(r2[8]) != 0
        assert "RG:Z:run7" in r1 and "RG:Z:run7" in r2
    assert sum(int(r[1]) & 2 > 0 for r in body) >= 114
    assert "@RG\tID:run7\tSM:phage" in (lambda_run / "pe.sam").read_text()
    result = evaluate(DATA / "lambda_pe_truth.sam.gz", lambda_run / "pe.sam")
    assert result["reads"] == 120 and result["accuracy"] >= 0.98 and result["mapq20_wrong"] == 0


@needs_samtools
@pytest.mark.parametrize("name", ["out.sam", "pe.sam"])
def test_samtools_quickcheck_flagstat_calmd_fixmate(lambda_run, name):
    sam = lambda_run / name
    subprocess.run(["samtools", "quickcheck", str(sam)], check=True)
    flagstat = subprocess.run(["samtools", "flagstat", str(sam)], check=True, capture_output=True, text=True).stdout
    assert "120 + 0 in total" in flagstat
    calmd = subprocess.run(["samtools", "calmd", str(sam), str(lambda_run / "ref.fa")], capture_output=True, text=True)
    assert calmd.returncode == 0 and "different NM" not in calmd.stderr and "different MD" not in calmd.stderr, calmd.stderr[:300]
    if name == "pe.sam":
        assert "properly paired" in flagstat
        fixed = lambda_run / "fixmate.sam"
        subprocess.run(["samtools", "fixmate", "-O", "sam", str(sam), str(fixed)], check=True)
        assert [f[:9] for f in _body(fixed)] == [f[:9] for f in _body(sam)]  # mate fields and TLEN as fixmate sets them


@pytest.mark.slow
def test_interleaved_and_stdin_equal_two_files(lambda_run, tmp_path):
    lines1 = gzip.open(DATA / "lambda_pe_1.fq.gz", "rt").read().splitlines()
    lines2 = gzip.open(DATA / "lambda_pe_2.fq.gz", "rt").read().splitlines()
    inter = "".join("\n".join(lines1[i : i + 4] + lines2[i : i + 4]) + "\n" for i in range(0, len(lines1), 4))
    (tmp_path / "inter.fq.gz").write_bytes(gzip.compress(inter.encode()))
    exe = [sys.executable, "-m", "seqverse.genomics.cli"]
    proc = subprocess.run([*exe, "esa", "align", str(lambda_run / "idx"), "-", "-p", "-t", "1", "-R", r"@RG\tID:run7\tSM:phage"],
                          input=(tmp_path / "inter.fq.gz").read_bytes(), capture_output=True, check=True)
    body = [line.split("\t") for line in proc.stdout.decode().splitlines() if not line.startswith("@")]
    assert body == _body(lambda_run / "pe.sam")


def test_bad_first_record_writes_nothing_to_stdout(lambda_run, tmp_path, capsys):
    bad = tmp_path / "bad.fq"
    bad.write_text("@r1\nACGT\n+\nII\n")
    assert main(["esa", "align", str(lambda_run / "idx"), str(bad), "-t", "1"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and str(bad) in out.err and "record 1" in out.err
