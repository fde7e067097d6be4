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
    assert params["k"] in (1, 2)
    # both strands: a sequence and its reverse complement get the same features
    pipe, params = kmer_logistic_regression(seqs[:40], labels[:40], ks=(2,), strands=(True,), val_mask=[i >= 30 for i in range(40)])
    assert params["both_strands"] and params["k"] == 2
    feats = pipe[0].transform(["AACGTTG", "CAACGTT"]).toarray()
    np.testing.assert_array_equal(feats[0], feats[1])


def test_validation_split_keeps_loci_whole():
    from seqverse.genomics.hyenadna.tasks import Split, validation_split

    ids = [f"{g}:L{j}:{k * 10 + 1}-{k * 10 + 10}" for g in ("Kleb", "Acin") for j in range(10) for k in range(3)]
    split = Split(ids, ["ACGT"] * len(ids), [int(i.startswith("Kleb")) for i in ids])
    fit, val = validation_split(split, 0.2, seed=1)
    loci = lambda s: {i.rsplit(":", 1)[0] for i in s.ids}  # noqa: E731
    assert not loci(fit) & loci(val) and len(fit.ids) + len(val.ids) == len(ids)
    assert sorted(val.labels) == [0] * 6 + [1] * 6  # 2 of the 10 loci of each label, all 3 fragments each
    assert validation_split(split, 0.2, seed=1)[1].ids == val.ids and validation_split(split, 0.2, seed=2)[1].ids != val.ids


def test_both_strand_prediction_is_the_mean_over_strands():
    import torch

    from seqverse.genomics.hyenadna.finetune import predict
    from seqverse.genomics.hyenadna.model import HyenaDNAConfig, HyenaDNAForSequenceClassification
    from seqverse.genomics.io import reverse_complement

    assert reverse_complement("AACGTN") == "NACGTT" and reverse_complement("acg") == "cgt"
    torch.manual_seed(0)
    model = HyenaDNAForSequenceClassification(HyenaDNAConfig(d_model=16, n_layer=1, max_seq_len=32, emb_dim=5, embed_dropout=0.0), "mean")
    seqs = ["ACGTTGCAAC", "GGGATTACA"]
    one, rc = predict(model, seqs, both_strands=False), predict(model, [reverse_complement(s) for s in seqs], both_strands=False)
    assert not np.allclose(one, rc)  # the model itself is not strand-symmetric
    np.testing.assert_allclose(predict(model, seqs, both_strands=True), (one + rc) / 2, rtol=1e-6)
    model.both_strands = True  # as load_finetuned sets it from task.json
    np.testing.assert_allclose(predict(model, seqs), (one + rc) / 2, rtol=1e-6)
