"""The embedded default does its job, judged by HMMER: a regression test that fails if a retrained or
mis-exported default stops generating the requested family (round 1's default hit 0 of 4 here)."""

import shutil

import pytest

from seqverse.genomics.prollama import data as pdata
from seqverse.genomics.prollama.evaluate import hmm_hits
from seqverse.genomics.prollama.tasks import ProLLaMA

PKINASE_HMM = pdata.HMMER_EXAMPLES / next(p for p in pdata.PFAM_HMMS if p.endswith("/Pkinase.hmm"))

pytestmark = pytest.mark.skipif(not (shutil.which("hmmsearch") and PKINASE_HMM.is_file()),
                                reason="needs hmmer and hmmer-examples (make installs both)")


def test_embedded_pkinase_generation_hits_the_pkinase_profile():
    seqs = ProLLaMA.from_dir().generate(4, "Pkinase", seed=0)
    hits = hmm_hits(PKINASE_HMM, seqs)
    assert sum("Pkinase" in hits[i] for i in range(len(seqs))) >= 3
