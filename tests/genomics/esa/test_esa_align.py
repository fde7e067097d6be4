"""DNA-ESA end to end on lambda phage (a species the encoder never saw): index, align, SAM validity, accuracy."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from seqverse.genomics.cli import main
from seqverse.genomics.esa.evaluate import evaluate

DATA = __import__("pathlib").Path(__file__).parents[2] / "data" / "esa"


@pytest.fixture(scope="module")
def lambda_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("esa")
    assert main(["esa", "index", str(DATA / "lambda_virus.fa.gz"), "-o", str(tmp / "idx"), "--threads", "1"]) == 0
    assert main(["esa", "align", str(tmp / "idx"), str(DATA / "lambda_reads.fq.gz"), "-o", str(tmp / "out.sam"), "--threads", "2"]) == 0
    return tmp


def test_index_reloads_and_searches_itself(lambda_run):
    from seqverse.genomics.esa.index import load_index

    index = load_index(lambda_run / "idx")
    assert index.meta["fragments"] == index.faiss_index.ntotal == len(index.frag_start)
    # every fragment's own sequence retrieves itself first (the store round-trips)
    name = index.contig_names[0]
    seqs = [index.contigs[name][s : s + n] for s, n in zip(index.frag_start[:20], index.frag_len[:20])]
    _, ids = index.search(index.encoder.embed_sequences(seqs), 1)
    assert (ids[:, 0] == np.arange(20)).all()


@pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools not installed")
def test_sam_passes_samtools(lambda_run):
    sam = lambda_run / "out.sam"
    subprocess.run(["samtools", "quickcheck", str(sam)], check=True)
    flagstat = subprocess.run(["samtools", "flagstat", str(sam)], check=True, capture_output=True, text=True).stdout
    assert "120 + 0 in total" in flagstat
    subprocess.run(["samtools", "sort", "-o", str(lambda_run / "sorted.bam"), str(sam)], check=True)
    subprocess.run(["samtools", "quickcheck", str(lambda_run / "sorted.bam")], check=True)


def test_lambda_accuracy(lambda_run):
    result = evaluate(DATA / "lambda_reads_truth.sam.gz", lambda_run / "out.sam")
    assert result["reads"] == 120 and result["missing_from_sam"] == 0
    assert result["accuracy"] >= 0.98
    assert result["mapq20_wrong"] == 0
    header = [line for line in (lambda_run / "out.sam").read_text().splitlines() if line.startswith("@")]
    assert header[1].startswith("@SQ\tSN:gi|9626243|ref|NC_001416.1|\tLN:48502")
    assert any(line.startswith("@PG\tID:seqverse-esa") for line in header)
