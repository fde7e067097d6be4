"""Recformer: official parameter layout, tokenization conventions, masking, save/load, learning."""

import json
from pathlib import Path

import pytest
import torch

from seqverse.recsys import data
from seqverse.recsys.recformer.model import RecformerConfig, RecformerForPretraining, RecformerForSeqRec
from seqverse.recsys.recformer.tokenizer import RecformerTokenizer
from seqverse.recsys.recformer.train import encode_all_items, encode_items, seqrec_loss

TINY = Path(__file__).resolve().parents[1] / "data" / "recformer" / "tiny"


@pytest.fixture(scope="module")
def tiny():
    ds = data.load_dataset(TINY)
    cfg = RecformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_token_num=96,
                          attention_window=[16, 16], pooler_type="avg")
    tok = RecformerTokenizer.train([data.item_sentence(a) for a in ds.item_attrs[1:]], max_attr_num=cfg.max_attr_num,
                                   max_attr_length=cfg.max_attr_length, max_item_embeddings=cfg.max_item_embeddings,
                                   max_token_num=cfg.max_token_num)
    cfg.vocab_size = tok.vocab_size
    return ds, cfg, tok, encode_items(tok, ds)


def test_tokenization_follows_the_paper(tiny):
    ds, cfg, tok, items = tiny
    ids, types = tok.encode_item({"movie_title": "Toy Story", "release_year": "1995"})
    assert tok.tk.decode(ids) == "movie_title toy story release_year 1995"
    assert types == [1, 2, 2, 1, 2]  # key tokens 1, value tokens 2
    long_ids, _ = tok.encode_item({"movie_title": "a b c d e f g h i j"})
    assert len(long_ids) == cfg.max_attr_length  # each attribute truncated
    enc = tok.encode([items[1], items[2]])  # past ... present
    assert enc["input_ids"][0] == tok.bos_token_id and enc["global_attention_mask"][:2] == [1, 0]
    n2 = len(items[2][0])
    assert enc["input_ids"][1:1 + n2] == items[2][0]  # most recent item first
    assert enc["item_position_ids"][:1 + n2 + 1] == [0] + [1] * n2 + [2]
    assert enc["token_type_ids"][0] == 0
    batch = tok.pad([enc, tok.encode([items[3]])])
    assert batch["token_type_ids"][1, -1] == 3 and batch["attention_mask"][1, -1] == 0


def test_official_parameter_names(tiny):
    _, cfg, _, _ = tiny
    keys = set(RecformerForPretraining(cfg).state_dict())
    for k in ["longformer.embeddings.word_embeddings.weight", "longformer.embeddings.position_embeddings.weight",
              "longformer.embeddings.token_type_embeddings.weight",
              "longformer.embeddings.item_position_embeddings.weight", "longformer.embeddings.LayerNorm.weight",
              "longformer.encoder.layer.0.attention.self.query.weight",
              "longformer.encoder.layer.0.attention.self.query_global.weight",
              "longformer.encoder.layer.1.output.dense.weight", "lm_head.dense.weight", "lm_head.decoder.weight"]:
        assert k in keys, k


def test_padding_does_not_change_scores(tiny):
    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    model = RecformerForSeqRec(cfg).eval()
    model.init_item_embedding(encode_all_items(model.longformer, tok, items))
    short = tok.encode([items[i] for i in ds.sequences[0][:2]])
    long = tok.encode([items[i] for i in ds.sequences[3][:20]])
    with torch.no_grad():
        alone = model(tok.pad([short]))
        batched = model(tok.pad([short, long]))
    assert torch.allclose(alone[0, 1:], batched[0, 1:], atol=1e-4)
    assert alone[0, 0] == -float("inf")


def test_dense_attention_equals_transformers_longformer(tiny):
    """The dense path (the default) against transformers' chunked Longformer code: same token
    states, pooled states and gradients, with padding, histories longer than the window and a
    sequence with a second global token."""
    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    model = RecformerForSeqRec(cfg).eval()
    for p in model.parameters():  # a non-trivial point: global and local projections differ
        torch.nn.init.normal_(p, std=0.2)
    batch = tok.pad([tok.encode([items[i] for i in ds.sequences[u][:n]]) for u, n in ((0, 2), (3, 20), (5, 6))])
    batch["global_attention_mask"][1, 7] = 1
    assert batch["attention_mask"].sum(1).min() < batch["input_ids"].shape[1] > 2 * max(cfg.attention_window)
    enc = model.longformer
    inputs = {k: v for k, v in batch.items() if k not in ("item_ids", "recent_items")}
    outs, grads = {}, {}
    for impl in ("longformer", "dense"):
        enc.attention_impl = impl
        model.zero_grad()
        h, pooled = enc(**inputs)
        pooled.pow(2).sum().backward()
        outs[impl] = (h * batch["attention_mask"][..., None], pooled)
        grads[impl] = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    enc.attention_impl = "dense"
    for a, b in zip(outs["longformer"], outs["dense"]):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert grads["longformer"].keys() == grads["dense"].keys()
    assert any("query_global" in n for n in grads["dense"])
    for n, g in grads["longformer"].items():
        assert torch.allclose(g, grads["dense"][n], atol=1e-4, rtol=1e-4), n


def test_save_load_and_official_bin(tiny, tmp_path):
    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    model = RecformerForSeqRec(cfg).eval()
    model.init_item_embedding(encode_all_items(model.longformer, tok, items))
    batch = tok.pad([tok.encode([items[i] for i in ds.sequences[1][:5]])])
    with torch.no_grad():
        ref = model(batch)
    model.save_pretrained(tmp_path / "ours")
    with torch.no_grad():
        assert torch.equal(RecformerForSeqRec.from_pretrained(tmp_path / "ours").eval()(batch), ref)
    # an official-style directory: config.json + a torch state dict (loaded with weights_only=True)
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "config.json").write_text((tmp_path / "ours" / "config.json").read_text())
    torch.save(model.state_dict(), tmp_path / "official" / "pytorch_model.bin")
    with torch.no_grad():
        assert torch.equal(RecformerForSeqRec.from_pretrained(tmp_path / "official").eval()(batch), ref)


def test_finetuning_steps_lower_the_loss(tiny):
    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    model = RecformerForSeqRec(cfg)
    model.init_item_embedding(encode_all_items(model.longformer, tok, items))
    seqs = [s for s in ds.sequences if len(s) > 6][:8]
    batch = tok.pad([tok.encode([items[i] for i in s[:5]]) for s in seqs])
    labels = torch.tensor([s[5] for s in seqs])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(6):
        loss = model(batch, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5  # (with <s> pooling from a random init it stays flat: see README)


def test_cold_items_are_no_training_candidates(tiny):
    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    model = RecformerForSeqRec(cfg)
    model.init_item_embedding(encode_all_items(model.longformer, tok, items))
    model.eval()  # no dropout: the same scores in every call
    seqs = [s for s in ds.sequences if len(s) > 6][:4]
    batch = tok.pad([tok.encode([items[i] for i in s[:5]]) for s in seqs])
    labels = torch.tensor([s[5] for s in seqs])
    unseen = torch.tensor(sorted({i for i in range(1, ds.n_items + 1)} - set(labels.tolist()))[:10])
    with torch.no_grad():
        scores = model(batch)
        keep = [i for i in range(scores.shape[1]) if i not in set(unseen.tolist()) and i != 0]
        expected = torch.nn.functional.cross_entropy(scores[:, keep], torch.tensor([keep.index(t) for t in labels]))
        got = seqrec_loss(model, batch, labels, unseen)
        assert torch.allclose(got, expected, atol=1e-5)
        assert seqrec_loss(model, batch, labels) > got  # with them as negatives the loss is larger
        model.item_embedding.weight[unseen] = torch.randn(len(unseen), cfg.hidden_size)
        assert torch.allclose(seqrec_loss(model, batch, labels, unseen), got, atol=1e-5)


def test_pretraining_loss_is_contrastive_plus_mlm(tiny):
    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    model = RecformerForPretraining(cfg)
    a = tok.pad([tok.encode([items[i] for i in s[:4]]) for s in ds.sequences[:4]])
    b = tok.pad([tok.encode([items[s[4]]]) for s in ds.sequences[:4]])
    loss_cl, _ = model(a, b)
    labels = torch.full_like(a["input_ids"], -100)
    labels[:, 1] = a["input_ids"][:, 1]
    masked = a["input_ids"].clone()
    masked[:, 1] = tok.mask_token_id
    loss_all, _ = model(a, b, (masked, labels))
    assert loss_all > loss_cl  # adds mlm_weight * MLM


def test_stage2_learning_rate_decays_linearly_to_zero(tiny, tmp_path):
    """--stage2-decay: stage 1 at the base rate, stage 2 falling linearly to 0 over its epochs."""
    from seqverse.recsys.recformer.train import finetune

    ds, cfg, tok, _ = tiny
    tok.save(tmp_path / "tok.json")
    split = data.make_split(ds, "standard")
    state = finetune(ds, split, tmp_path / "ft", cfg, tokenizer_file=tmp_path / "tok.json", stage1_epochs=1,
                     stage2_epochs=2, batch_size=4, lr=1e-3, patience=5, stage2_decay=True, log=lambda _: None)
    assert state["stage"] == 2 and state["epoch"] == 2
    n = len([u for u in split.users if split.train[u]])
    last_batch_start = (n - 1) // 4 * 4
    opt = json.loads((tmp_path / "ft" / "stage2" / "checkpoint" / "trainer_state.json").read_text())["optimizer"]
    expected = 1e-3 * (1 - (1 + last_batch_start / n) / 2)
    assert opt["param_groups"][0]["lr"] == pytest.approx(expected)
    assert 0 < expected < 0.5e-3


def test_stage2_only_continuation_keeps_the_saved_item_matrix(tiny, tmp_path):
    """stage1_epochs=0 continues a fine-tuned model in stage 2 against the ``I`` it was trained with."""
    import copy

    from seqverse.recsys.recformer.model import load_state_dict
    from seqverse.recsys.recformer.train import finetune

    ds, cfg, tok, _ = tiny
    tok.save(tmp_path / "tok.json")
    split = data.make_split(ds, "standard")
    finetune(ds, split, tmp_path / "a", copy.deepcopy(cfg), tokenizer_file=tmp_path / "tok.json", stage1_epochs=1,
             stage2_epochs=1, batch_size=4, lr=1e-3, log=lambda _: None)
    saved = load_state_dict(tmp_path / "a" / "best")["item_embedding.weight"]
    state = finetune(ds, split, tmp_path / "b", copy.deepcopy(cfg), pretrained=tmp_path / "a" / "best",
                     tokenizer_file=tmp_path / "tok.json", stage1_epochs=0, stage2_epochs=1, batch_size=4, lr=1e-3,
                     log=lambda _: None)
    assert [e["stage"] for e in state["log"]] == [2]
    assert torch.equal(load_state_dict(tmp_path / "b" / "best")["item_embedding.weight"], saved)


def test_item_fine_tuning_moves_seen_items_only_and_resumes(tiny, tmp_path):
    """item_lr > 0: stage 2 fine-tunes I; cold items (no training candidates) keep their text
    encodings; a second call resumes with the items' optimizer group."""
    import copy

    from seqverse.recsys.recformer.model import load_state_dict
    from seqverse.recsys.recformer.train import finetune

    ds, cfg, tok, _ = tiny
    tok.save(tmp_path / "tok.json")
    split = data.make_split(ds, "cold-start")
    assert split.cold_items
    finetune(ds, split, tmp_path / "a", copy.deepcopy(cfg), tokenizer_file=tmp_path / "tok.json", stage1_epochs=1,
             stage2_epochs=1, batch_size=4, lr=1e-3, log=lambda _: None)
    before = load_state_dict(tmp_path / "a" / "best")["item_embedding.weight"]
    kw = dict(pretrained=tmp_path / "a" / "best", tokenizer_file=tmp_path / "tok.json", stage1_epochs=0,
              batch_size=4, lr=1e-3, item_lr=1e-2, patience=5, log=lambda _: None)
    finetune(ds, split, tmp_path / "b", copy.deepcopy(cfg), stage2_epochs=1, **kw)
    state = finetune(ds, split, tmp_path / "b", copy.deepcopy(cfg), stage2_epochs=2, **kw)
    assert [e["epoch"] for e in state["log"]] == [1, 2]
    after = load_state_dict(tmp_path / "b" / "last")
    cold = torch.tensor(sorted(split.cold_items))
    seen = torch.tensor(sorted({i for u in split.users for i in split.train[u]}))
    assert torch.equal(after["item_embedding.weight"][cold], before[cold])
    assert not torch.allclose(after["item_embedding.weight"][seen], before[seen])
    opt = json.loads((tmp_path / "b" / "stage2" / "checkpoint" / "trainer_state.json").read_text())["optimizer"]
    assert [g.get("name") for g in opt["param_groups"]] == [None, "items"]


def test_item_ids_follow_item_positions(tiny):
    """``item_ids`` (for ``item_input``) name, per token, the item its item position points at."""
    ds, cfg, tok, items = tiny
    history = ds.sequences[3][:20]
    enc = tok.encode([items[i] for i in history], item_ids=history)
    assert len(enc["item_ids"]) == len(enc["input_ids"]) == cfg.max_token_num  # truncated alike
    for pos, item in zip(enc["item_position_ids"], enc["item_ids"]):
        assert item == (0 if pos == 0 else history[-pos])  # position 1 = most recent
    batch = tok.pad([enc, tok.encode([items[history[0]]], item_ids=history[:1])])
    assert batch["item_ids"][1, -1] == 0 and batch["item_ids"][1, 1] == history[0]
    # recent_items: every item (not only those whose tokens fit), most recent first, padded with 0
    assert enc["recent_items"] == history[::-1]
    assert batch["recent_items"].shape == (2, 20) and batch["recent_items"][1].tolist() == [history[0]] + [0] * 19
    with pytest.raises(ValueError, match="item ids"):
        tok.encode([items[1], items[2]], item_ids=[1])


@pytest.mark.parametrize("extension,proj", [({"item_input": True}, "item_input_proj"),
                                            ({"history_pool": 4}, "history_proj")])
def test_item_row_extensions_start_as_plain_recformer_then_learn_and_round_trip(tiny, tmp_path, extension, proj):
    """The seqverse extensions reading I (``item_input``, ``history_pool``): zero projection = plain
    Recformer; trained, they move the projection and seen items' rows, keep cold items' rows, and
    load back to the same scores."""
    import copy
    from dataclasses import replace

    from seqverse.recsys.recformer.train import encode_history, finetune

    ds, cfg, tok, items = tiny
    torch.manual_seed(0)
    plain = RecformerForSeqRec(cfg).eval()
    plain.init_item_embedding(encode_all_items(plain.longformer, tok, items))
    hybrid = RecformerForSeqRec(replace(cfg, **extension)).eval()
    hybrid.load_state_dict(plain.state_dict(), strict=False)
    batch = tok.pad([encode_history(tok, items, s[:6]) for s in ds.sequences[:3]])
    with torch.no_grad():
        assert torch.equal(plain(batch)[:, 1:], hybrid(batch)[:, 1:])
        with pytest.raises(ValueError, match="item_ids"):
            hybrid({k: v for k, v in batch.items() if k not in ("item_ids", "recent_items")})

    tok.save(tmp_path / "tok.json")
    split = data.make_split(ds, "cold-start")
    finetune(ds, split, tmp_path / "a", copy.deepcopy(cfg), tokenizer_file=tmp_path / "tok.json", stage1_epochs=1,
             stage2_epochs=1, batch_size=4, lr=1e-3, log=lambda _: None)
    before = RecformerForSeqRec.from_pretrained(tmp_path / "a" / "best").item_embedding.weight
    finetune(ds, split, tmp_path / "b", replace(cfg, **extension), pretrained=tmp_path / "a" / "best",
             tokenizer_file=tmp_path / "tok.json", stage1_epochs=0, stage2_epochs=1, batch_size=4, lr=1e-3,
             item_lr=1e-2, log=lambda _: None)
    trained = RecformerForSeqRec.from_pretrained(tmp_path / "b" / "last").eval()
    assert getattr(trained, proj).weight.abs().sum() > 0
    cold = torch.tensor(sorted(split.cold_items))
    assert torch.equal(trained.item_embedding.weight[cold], before[cold])
    assert not torch.equal(trained.item_embedding.weight, before)
    trained.save_pretrained(tmp_path / "c")
    with torch.no_grad():
        assert torch.equal(trained(batch), RecformerForSeqRec.from_pretrained(tmp_path / "c").eval()(batch))
