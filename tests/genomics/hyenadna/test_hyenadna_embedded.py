"""The embedded default model: loads with no flags and predicts held-out HS11286 DNA better than chance."""

import json
from pathlib import Path

from seqverse.genomics.cli import main
from seqverse.genomics.hyenadna.data import read_records

GENOME = Path("/usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz")  # Debian kleborate-examples


def test_embedded_model_scores_heldout_dna(tmp_path, capsys):
    name, chrom = max(read_records(GENOME), key=lambda r: len(r[1]))
    start = int(len(chrom) * 0.9)  # inside the held-out last 20%
    (tmp_path / "heldout.fa").write_text(f">heldout\n{chrom[start : start + 3000]}\n")
    assert main(["hyena", "score", str(tmp_path / "heldout.fa"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["length"] == 3000
    assert rows[0]["bits_per_base"] < 1.95  # uniform is 2.0
