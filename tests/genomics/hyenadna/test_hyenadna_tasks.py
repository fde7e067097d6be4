"""Task directories (CSV, labelled FASTA, token labels), their errors, and the k-mer baseline."""

import numpy as np
import pytest

from seqverse.core.clikit import InputError
from seqverse.genomics.hyenadna.baselines import kmer_logistic_regression
from seqverse.genomics.hyenadna.tasks import load_task


def test_fasta_and_token_tasks(tmp_path):
    (tmp_path / "train.fa").write_text(">a label=x\nACGT\n>b label=y\nGGCC\n")
    (tmp_path / "test.fa").write_text(">c label=y\nGGCA\n")
    task = load_task(tmp_path)
    assert task.label_names == ["x", "y"] and task.train.labels == [0, 1] and task.test.labels == [1]
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "task.json").write_text('{"kind": "token"}')
    (tok / "train.csv").write_text("id,sequence,label\nr1,ACGT,0110\n")
    (tok / "test.csv").write_text("id,sequence,label\nr2,ACG,011\n")
    t = load_task(tok)
    assert t.kind == "token" and t.train.labels[0].tolist() == [0, 1, 1, 0] and t.label_names == ["0", "1"]
    (tok / "test.csv").write_text("id,sequence,label\nr2,ACG,01\n")
    with pytest.raises(InputError, match="test.csv:2.*one digit per base"):
        load_task(tok)


def test_bad_task_records_are_named(tmp_path):
    (tmp_path / "train.csv").write_text("id,sequence,label\nok,ACGT,x\nbroken,AC-T,y\n")
    (tmp_path / "test.csv").write_text("id,sequence,label\nt,ACGT,x\n")
    with pytest.raises(InputError, match=r"train.csv:3.*'-' at position 3"):
        load_task(tmp_path)
    (tmp_path / "train.csv").write_text("id,sequence,label\nok,ACGT,x\n")
    (tmp_path / "test.csv").write_text("id,sequence,label\nt,ACGT,z\n")
    (tmp_path / "task.json").write_text('{"labels": ["x", "y"]}')
    with pytest.raises(InputError, match="record 't' has label 'z'"):
        load_task(tmp_path)


def test_kmer_logistic_regression_separates_composition():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 60, p=[0.4, 0.1, 0.1, 0.4] if i % 2 else [0.1, 0.4, 0.4, 0.1])) for i in range(60)]
    labels = [i % 2 for i in range(60)]
    pipe, params = kmer_logistic_regression(seqs[:40], labels[:40], ks=(1, 2))
    assert (pipe.predict(seqs[40:]) == np.array(labels[40:])).mean() >= 0.9
    assert params["countvectorizer__ngram_range"][0] in (1, 2)
