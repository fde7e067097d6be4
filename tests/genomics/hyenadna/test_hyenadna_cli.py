"""`seqverse-genomics hyena ...` end to end on a tiny model: score, variants, bad input, pretrain/resume,
build a task and fine-tune, embed, generate."""

import json

import numpy as np
import pytest
import torch

from seqverse.genomics.cli import main
from seqverse.genomics.hyenadna import HyenaDNAConfig, HyenaDNAForCausalLM

REF = "ACGTTGCAACGGTACCGTTAGCATGCAAGTCCGATGCAATCGGATCCATGCAAGTTGACCGTAGCTAGGCTAACGTTAGC" * 2


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    HyenaDNAForCausalLM(HyenaDNAConfig(d_model=16, n_layer=1, max_seq_len=32, emb_dim=5, embed_dropout=0.0)).save_pretrained(tmp_path / "m")
    return str(tmp_path / "m")


def run(capsys, *argv):
    code = main(["hyena", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_score_variant_equals_scoring_both_sequences(tmp_path, capsys, model_dir):
    (tmp_path / "ref.fa").write_text(f">chrT test\n{REF}\n")
    pos = 75
    ref_base = REF[pos - 1]
    alt_base = "G" if ref_base != "G" else "T"
    alt_seq = REF[: pos - 1] + alt_base + REF[pos:]
    (tmp_path / "v.txt").write_text(f"chrT:{pos}:{ref_base}>{alt_base}\n")
    code, out, _ = run(capsys, "score", tmp_path / "ref.fa", "--vcf", tmp_path / "v.txt", "--model", model_dir, "--flank", 1000, "--json")
    assert code == 0
    llr = json.loads(out)["llr"]
    (tmp_path / "both.fa").write_text(f">ref\n{REF}\n>alt\n{alt_seq}\n")  # the two full sequences, by hand
    code, out, _ = run(capsys, "score", tmp_path / "both.fa", "--model", model_dir, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["id"] for r in rows] == ["ref", "alt"] and rows[0]["length"] == len(REF)
    assert llr == pytest.approx(rows[1]["log_likelihood"] - rows[0]["log_likelihood"], abs=1e-6)
    assert rows[0]["bits_per_base"] == pytest.approx(-rows[0]["log_likelihood"] / len(REF) / np.log(2))
    assert abs(llr) > 0


@pytest.mark.parametrize("content, message", [
    (">good\nACGT\n>bad_one\nACGTXACGT\n", r"record 'bad_one'.*'X' at position 5"),
    ("", r"no FASTA records"),
])
def test_bad_fasta_is_named(tmp_path, capsys, model_dir, content, message):
    (tmp_path / "in.fa").write_text(content)
    code, out, err = run(capsys, "score", tmp_path / "in.fa", "--model", model_dir, "--json")
    assert code == 2 and out == ""
    assert __import__("re").search(message, err), err


def test_vcf_ref_mismatch_is_named(tmp_path, capsys, model_dir):
    (tmp_path / "ref.fa").write_text(f">chrT\n{REF}\n")
    wrong = "A" if REF[9] != "A" else "C"
    (tmp_path / "v.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                                    f"chrT\t5\trs0\t{REF[4]}\tG,T\t.\t.\t.\nchrT\t10\trs1\t{wrong}\tT\t.\t.\t.\n")
    code, out, err = run(capsys, "score", tmp_path / "ref.fa", "--vcf", tmp_path / "v.vcf", "--model", model_dir)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "v.vcf: record 2 (chrT:10)" in err and f"chrT:10:{wrong}>T" in err and f"does not match the reference '{REF[9]}'" in err


def test_pretrain_resume_finetune_embed_generate(tmp_path, capsys):
    rng = np.random.default_rng(0)
    unit = "AACCGGTT"  # each base follows from the two before it
    (tmp_path / "g.fa").write_text(">g1\n" + unit * 250 + "\n")
    out = tmp_path / "pt"
    args = ["pretrain", tmp_path / "g.fa", "-o", out, "--d-model", 16, "--n-layer", 1, "--seq-len", 64, "--min-seq-len", 16,
            "--tokens-per-step", 512, "--lr", 1e-2, "--fraction", "0:1", "--val-fraction", "0.9:1", "--eval-every", 20]
    assert run(capsys, *args, "--steps", 40, "--max-seconds", 0)[0] == 0  # stops after one step, resumable
    assert json.loads((out / "trainer_state.json").read_text())["step"] == 1
    assert run(capsys, *args, "--steps", 40)[0] == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41)) and log[0]["seq_len"] == 16 and log[-1]["seq_len"] == 64
    assert log[-1]["hyena_val_bits_per_base"] < 1.0 < 3.0 < log[0]["hyena_loss_bits"]  # a predictable genome is learnt

    task = tmp_path / "task"
    task.mkdir()
    at, gc = "ATTA", "GCCG"
    rows = ["id,sequence,label"] + [f"r{i},{''.join(rng.choice(list(at if i % 2 else gc), 24))},{'at' if i % 2 else 'gc'}" for i in range(48)]
    (task / "train.csv").write_text("\n".join(rows[:41]) + "\n")
    (task / "test.csv").write_text("\n".join(rows[:1] + rows[41:]) + "\n")
    code, o, _ = run(capsys, "finetune", "--task", task, "--model", out, "--epochs", 3, "--lr", 3e-3, "--both-strands", "--json", "-o", tmp_path / "ft")
    assert code == 0 and json.loads(o)["test_accuracy"] == 1.0 and json.loads(o)["rc_augment"]
    assert json.loads((tmp_path / "ft" / "task.json").read_text())["both_strands"] is True

    (tmp_path / "q.fa").write_text(">a\nACGTACGTAC\n>b\nGGCCA\n")
    assert run(capsys, "embed", tmp_path / "q.fa", "--model", out, "-o", tmp_path / "e.npy")[0] == 0
    assert np.load(tmp_path / "e.npy").shape == (2, 16)
    assert run(capsys, "embed", tmp_path / "q.fa", "--model", out, "--per-position", "-o", tmp_path / "e.parquet")[0] == 0
    import pyarrow.parquet as pq
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 15
    code, o, _ = run(capsys, "generate", "--model", out, "--prompt", unit * 2, "-n", 30, "--temperature", 0.5, "--json")
    assert code == 0 and len(json.loads(o)["generated"]) == 30


def test_finetune_keep_best_restores_the_best_validation_epoch(tmp_path, model_dir):
    from seqverse.genomics.hyenadna.finetune import accuracy, finetune
    from seqverse.genomics.hyenadna.tasks import Split, Task

    rng = np.random.default_rng(1)

    def split(n):
        labels = [i % 2 for i in range(n)]
        seqs = ["".join(rng.choice(list("ATTA" if y else "GCCG"), 24)) for y in labels]
        return Split([f"r{i}" for i in range(n)], seqs, labels)

    task = Task("toy", "sequence", ["gc", "at"], split(24), split(8))
    val = split(8)
    result = finetune(model_dir, task, out=tmp_path / "ft", epochs=3, lr=3e-3, val=val, keep_best=True, progress=False)
    accs = [h["val_accuracy"] for h in result["history"]]
    assert result["kept_epoch"] == 1 + accs.index(max(accs))
    from seqverse.genomics.hyenadna.finetune import load_finetuned
    model, _ = load_finetuned(tmp_path / "ft")
    assert accuracy(model, val, both_strands=False) == max(accs)
