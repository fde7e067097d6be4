"""Bad input through the CLI: exit status 2, one message naming the file and record, no SAM left behind."""

from __future__ import annotations

import gzip

import pytest

from seqverse.genomics.cli import main

DATA = __import__("pathlib").Path(__file__).parents[2] / "data" / "esa"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("esa_inputs")
    assert main(["esa", "index", str(DATA / "lambda_virus.fa.gz"), "-o", str(tmp / "idx"), "--threads", "1"]) == 0
    return tmp / "idx"


def _records(n: int):
    with gzip.open(DATA / "lambda_reads.fq.gz", "rt") as handle:
        lines = handle.read().splitlines()
    return lines[: 4 * n]


@pytest.mark.parametrize(
    "case, mutate, expected",
    [
        ("mismatched", lambda r: r[:7] + [r[7][:-5]] + r[8:], "record 2"),
        ("truncated", lambda r: r[:6], "record 2"),
        ("empty", lambda r: [], "empty read file"),
        ("quality_runs_on", lambda r: r[:4] + ["ACGT"], "record 1"),
    ],
)
def test_bad_fastq(index_dir, tmp_path, capsys, case, mutate, expected):
    reads = tmp_path / f"{case}.fq"
    lines = mutate(_records(3))
    reads.write_text("\n".join(lines) + ("\n" if lines else ""))
    out = tmp_path / "out.sam"
    assert main(["esa", "align", str(index_dir), str(reads), "-o", str(out), "--batch-size", "1"]) == 2
    err = capsys.readouterr().err
    assert str(reads) in err and expected in err
    assert not out.exists() and not list(tmp_path.glob(".out.sam*"))


def test_fasta_without_sequence(tmp_path, capsys):
    ref = tmp_path / "ref.fa"
    ref.write_text(">chr1\nACGTACGTACGT\n>chr2 empty\n>chr3\nACGT\n")
    assert main(["esa", "index", str(ref), "-o", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err
    assert str(ref) in err and "chr2" in err and "no sequence" in err
    not_fasta = tmp_path / "reads.fa"
    not_fasta.write_text("@r1\nACGT\n+\nIIII\n")
    assert main(["esa", "index", str(not_fasta), "-o", str(tmp_path / "idx2")]) == 2
    assert "not FASTA" in capsys.readouterr().err


def test_n_and_lower_case_reads_align(index_dir, tmp_path):
    """Lower case is read as upper case and N scores -1 against any base, as bwa does: the reads still map."""
    lines = _records(20)
    for i in range(1, len(lines), 4):
        s = lines[i].lower()
        lines[i] = s[:100] + "NNNNN" + s[105:]
    reads = tmp_path / "mixed.fq"
    reads.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.sam"
    assert main(["esa", "align", str(index_dir), str(reads), "-o", str(out)]) == 0
    body = [line.split("\t") for line in out.read_text().splitlines() if not line.startswith("@")]
    assert len(body) == 20
    assert sum(int(f[1]) & 4 == 0 for f in body) == 20
    assert all(f[9] == f[9].upper() for f in body)


def test_missing_index(tmp_path, capsys):
    assert main(["esa", "align", str(tmp_path / "nope"), str(DATA / "lambda_reads.fq.gz"), "-o", str(tmp_path / "o.sam")]) == 2
    assert "nope: no such directory" in capsys.readouterr().err  # checked at parse time
    (tmp_path / "empty").mkdir()
    assert main(["esa", "align", str(tmp_path / "empty"), str(DATA / "lambda_reads.fq.gz"), "-o", str(tmp_path / "o.sam")]) == 2
    assert "not a DNA-ESA index" in capsys.readouterr().err and not (tmp_path / "o.sam").exists()
