"""ProLLaMA command line: bad input is one line, exit 2, no partial output; generate/predict round trip."""

import json

import pytest

from seqverse.genomics.cli import main
from seqverse.genomics.prollama import base


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "text.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 30)
    tok = base.train_tokenizer(d / "text.txt", vocab_size=300)
    model = base.new_model(tok, base.BaseConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, max_position_embeddings=1024))
    out = d / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "superfamilies.json").write_text(json.dumps(["Pkinase", "fn3"]))
    return out


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bad_letter_named_by_record_and_position(model_dir, tmp_path, capsys):
    fa = tmp_path / "in.fa"
    fa.write_text(">a\nMKVLA\n>b\nMKV1A\n")
    code, out, err = _run(["prollama", "predict", str(fa), "--model", str(model_dir)], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "record 2 (b)" in err and "position 4" in err and "'1'" in err


def test_empty_fasta(model_dir, tmp_path, capsys):
    fa = tmp_path / "empty.fa"
    fa.write_text("")
    code, _, err = _run(["prollama", "predict", str(fa), "--model", str(model_dir)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "empty.fa" in err


def test_unknown_superfamily_lists_known_and_writes_nothing(model_dir, tmp_path, capsys):
    out = tmp_path / "gen.fa"
    code, _, err = _run(["prollama", "generate", "--superfamily", "Kinase", "-n", "2", "-o", str(out),
                         "--model", str(model_dir)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "Pkinase" in err and "fn3" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_base_that_is_not_a_causal_lm(tmp_path, capsys):
    fa = tmp_path / "p.fa"
    fa.write_text(">a\nMKVLA\n")
    labels = tmp_path / "l.tsv"
    labels.write_text("a\tfn3\n")
    not_lm = tmp_path / "notlm"
    not_lm.mkdir()
    (not_lm / "config.json").write_text('{"model_type": "vit"}')
    code, _, err = _run(["prollama", "train", "--base", str(not_lm), "--proteins", str(fa), "--labeled-fasta", str(fa),
                         "--labels", str(labels), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a causal language model" in err
    assert not (tmp_path / "out").exists()


def test_generate_predict_round_trip(model_dir, tmp_path, capsys):
    out = tmp_path / "gen.fa"
    code, _, _ = _run(["prollama", "generate", "--superfamily", "fn3", "-n", "2", "--max-new-tokens", "12",
                       "--prefix", "MK", "-o", str(out), "--model", str(model_dir)], capsys)
    assert code == 0 and (out.stat().st_mode & 0o777) == 0o644
    text = out.read_text()
    assert text.count(">") == 2 and all(line.startswith("MK") for line in text.splitlines()[1::2])
    code, stdout, _ = _run(["prollama", "predict", str(out), "--json", "--model", str(model_dir)], capsys)
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0 and [r["id"] for r in rows] == ["gen1", "gen2"]
    assert all(r["superfamily"] in ("Pkinase", "fn3") and 0.5 <= r["score"] <= 1 for r in rows)


def test_score_mutations(model_dir, tmp_path, capsys):
    wt = tmp_path / "wt.fa"
    wt.write_text(">wt\nMKVLAAG\n")
    muts = tmp_path / "m.txt"
    muts.write_text("K2A\nK2A:V3G\n")
    code, stdout, _ = _run(["prollama", "score-mutations", str(wt), str(muts), "--json", "--model", str(model_dir)], capsys)
    rows = json.loads(stdout)
    assert code == 0 and [r["mutation"] for r in rows] == ["K2A", "K2A:V3G"]
    assert all(abs(r["fitness"] - (r["nll_wt"] - r["nll_mt"])) < 1e-4 for r in rows)
    muts.write_text("A2G\n")
    code, _, err = _run(["prollama", "score-mutations", str(wt), str(muts), "--model", str(model_dir)], capsys)
    assert code == 2 and "line 1" in err and "wild type has K at 2" in err


def test_broken_answer_prior_is_one_line_exit_2(model_dir, tmp_path, capsys):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    (d / "answer_prior.json").write_text('{"superfamilies": ["Pkinase"], "log_prior": [0.0]}')
    fa = tmp_path / "in.fa"
    fa.write_text(">a\nMKVLA\n")
    code, out, err = _run(["prollama", "predict", str(fa), "--model", str(d)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "answer_prior.json" in err and "do not match" in err
    (d / "answer_prior.json").write_text('{"superfamilies": ["Pkinase", "fn3"], "log_prior": [0.0, -50.0]}')
    code, out, err = _run(["prollama", "predict", str(fa), "--model", str(d), "--json"], capsys)
    assert code == 0 and json.loads(out)["superfamily"] == "fn3"  # a prior calling fn3 e^50 times rarer lifts it
    code, plain, _ = _run(["prollama", "predict", str(fa), "--model", str(d), "--json", "--no-prior-correction"], capsys)
    from seqverse.genomics.prollama.tasks import ProLLaMA

    assert code == 0 and json.loads(plain) == ProLLaMA.from_dir(model_dir).predict([("a", "MKVLA")])[0]


def test_rerank_and_decoding_options_are_checked_before_anything_runs(model_dir, tmp_path, capsys):
    out = tmp_path / "gen.fa"
    code, _, err = _run(["prollama", "generate", "-n", "2", "--rerank", "4", "-o", str(out),
                         "--model", str(model_dir)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--rerank needs --superfamily" in err
    code, _, err = _run(["prollama", "generate", "--superfamily", "fn3", "-n", "5", "--rerank", "4", "-o", str(out),
                         "--model", str(model_dir)], capsys)
    assert code == 2 and "fewer sequences than -n 5" in err and not out.exists()
    fa = tmp_path / "in.fa"
    fa.write_text(">a\nMKVLA\n")
    code, out_text, err = _run(["prollama", "predict", str(fa), "--model", str(model_dir), "--decoding", "combined"],
                               capsys)
    assert code == 2 and out_text == "" and "answer_prior.json" in err  # combined needs the stored prior
    code, out_text, _ = _run(["prollama", "predict", str(fa), "--model", str(model_dir), "--decoding", "generative",
                              "--json"], capsys)
    assert code == 0 and json.loads(out_text)["superfamily"] in ("Pkinase", "fn3")
