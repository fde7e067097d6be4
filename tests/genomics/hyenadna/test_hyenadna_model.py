"""HyenaDNA model: official HF-port layout loads, tokenizer ids, recurrent == parallel, save/load."""

import json

import pytest
import torch
from safetensors.torch import save_file

from seqverse.core.clikit import InputError
from seqverse.genomics.hyenadna import CharacterTokenizer, HyenaDNAConfig, HyenaDNAForCausalLM
from seqverse.genomics.hyenadna.use import generate, generate_ref

# Official config.json sizes (LongSafari/hyenadna-*-hf)
OFFICIAL = {
    "tiny-1k": dict(d_model=128, n_layer=2, d_inner=512, max_seq_len=1026, emb_dim=5, filter_order=64, vocab_size=12),
    "medium-160k": dict(d_model=256, n_layer=8, d_inner=1024, max_seq_len=160002, emb_dim=5, filter_order=64, vocab_size=12),
}


def official_shapes(d_model, n_layer, d_inner, max_seq_len, emb_dim, filter_order, vocab_size):
    """Key -> shape of the official HF port's state dict, written out from modeling_hyena.py."""
    d, f, v = d_model, filter_order, vocab_size + (-vocab_size) % 8
    shapes = {"hyena.backbone.embeddings.word_embeddings.weight": (v, d)}
    for i in range(n_layer):
        p = f"hyena.backbone.layers.{i}."
        shapes.update({
            p + "mixer.in_proj.weight": (3 * d, d), p + "mixer.in_proj.bias": (3 * d,),
            p + "mixer.out_proj.weight": (d, d), p + "mixer.out_proj.bias": (d,),
            p + "mixer.short_filter.weight": (3 * d, 1, 3), p + "mixer.short_filter.bias": (3 * d,),
            p + "mixer.filter_fn.bias": (d,),
            p + "mixer.filter_fn.pos_emb.z": (1, max_seq_len, emb_dim), p + "mixer.filter_fn.pos_emb.t": (1, max_seq_len, 1),
            p + "mixer.filter_fn.implicit_filter.0.weight": (f, emb_dim), p + "mixer.filter_fn.implicit_filter.0.bias": (f,),
            p + "mixer.filter_fn.implicit_filter.1.freq": (1, f),
            p + "mixer.filter_fn.implicit_filter.2.weight": (f, f), p + "mixer.filter_fn.implicit_filter.2.bias": (f,),
            p + "mixer.filter_fn.implicit_filter.3.freq": (1, f),
            p + "mixer.filter_fn.implicit_filter.4.weight": (f, f), p + "mixer.filter_fn.implicit_filter.4.bias": (f,),
            p + "mixer.filter_fn.implicit_filter.5.freq": (1, f),
            p + "mixer.filter_fn.implicit_filter.6.weight": (d, f),
            p + "mixer.filter_fn.modulation.deltas": (1, 1, d),
            p + "norm1.weight": (d,), p + "norm1.bias": (d,), p + "norm2.weight": (d,), p + "norm2.bias": (d,),
            p + "mlp.fc1.weight": (d_inner, d), p + "mlp.fc1.bias": (d_inner,),
            p + "mlp.fc2.weight": (d, d_inner), p + "mlp.fc2.bias": (d,),
        })
    shapes.update({"hyena.backbone.ln_f.weight": (d,), "hyena.backbone.ln_f.bias": (d,), "lm_head.weight": (v, d)})
    return shapes


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_layout_loads(tmp_path, name):
    sizes = OFFICIAL[name]
    shapes = official_shapes(**sizes)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}
    for k in state:
        if k.endswith("pos_emb.t"):
            state[k] = torch.linspace(0, 1, sizes["max_seq_len"])[None, :, None]
    state["lm_head.weight"] = state["hyena.backbone.embeddings.word_embeddings.weight"].clone()  # tied
    if name == "medium-160k":  # as HF's safetensors writes it: shared Sin.freq and tied lm_head stored once
        state = {k: v for k, v in state.items() if not k.endswith((".3.freq", ".5.freq")) and k != "lm_head.weight"}
    save_file(state, str(tmp_path / "model.safetensors"))
    config = sizes | {"architectures": ["HyenaDNAForCausalLM"], "auto_map": {}, "model_type": "hyenadna",
                      "hyena_order": 2, "short_filter_order": 3, "num_inner_mlps": 2, "activation_freq": 10, "pad_vocab_size_multiple": 8}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = HyenaDNAForCausalLM.from_pretrained(tmp_path)
    loaded = model.state_dict()
    assert {k: tuple(v.shape) for k, v in loaded.items()} == shapes  # the same keys and shapes, both ways
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    if name == "medium-160k":  # the one stored freq fills its aliases
        p = "hyena.backbone.layers.0.mixer.filter_fn.implicit_filter."
        assert torch.equal(loaded[p + "5.freq"], state[p + "1.freq"])
    assert model.lm_head.weight is model.hyena.backbone.embeddings.word_embeddings.weight
    state["lm_head.weight"] = torch.randn(shapes["lm_head.weight"], generator=g)  # an untied head is kept as is
    save_file(state, str(tmp_path / "model.safetensors"))
    untied = HyenaDNAForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(untied.lm_head.weight, state["lm_head.weight"]) and not untied.config.tie_word_embeddings
    logits = model(torch.randint(7, 11, (1, 64)))
    assert logits.shape == (1, 64, 16) and torch.isfinite(logits).all()


def test_bad_checkpoint_is_named(tmp_path):
    shapes = official_shapes(**OFFICIAL["tiny-1k"])
    shapes["hyena.backbone.layers.0.mlp.fc1.weight"] = (256, 128)
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(OFFICIAL["tiny-1k"]))
    with pytest.raises(ValueError, match="mlp.fc1.weight"):
        HyenaDNAForCausalLM.from_pretrained(tmp_path)


def test_tokenizer_official_ids_and_errors():
    tok = CharacterTokenizer()
    assert list(tok.encode("ACGTN")) == [7, 8, 9, 10, 11]
    assert list(tok.encode("acgr")) == [7, 8, 9, 11]
    assert list(tok.encode("AC", add_special_tokens=True)) == [7, 8, 1]
    assert tok.vocab["[CLS]"] == 0 and tok.vocab["[PAD]"] == 4 and tok.vocab["[UNK]"] == 6
    batch = tok.batch(["AC", "GTA"])
    assert batch.tolist() == [[4, 7, 8], [9, 10, 7]]  # left padding
    with pytest.raises(InputError, match=r"chr9.*'X' at position 3"):
        tok.encode("ACX", record="chr9")


def tiny(mixer="hyena"):
    torch.manual_seed(0)
    return HyenaDNAForCausalLM(HyenaDNAConfig(d_model=32, n_layer=2, max_seq_len=64, emb_dim=5, embed_dropout=0.0, mixer=mixer))


@pytest.mark.parametrize("mixer", ["hyena", "attention"])
def test_recurrent_step_equals_forward(mixer):
    model = tiny(mixer).eval()
    x = torch.randint(7, 11, (2, 20))
    with torch.no_grad():
        full = model(x)
        state = model.init_state(2)
        steps = []
        for t in range(x.shape[1]):
            logits, state = model.step(x[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-4, rtol=1e-4)
    assert generate(model, "ACGT", 12, temperature=0.8, top_k=3, seed=1) == generate_ref(model, "ACGT", 12, temperature=0.8, top_k=3, seed=1)


def test_save_load_roundtrip(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    again = HyenaDNAForCausalLM.from_pretrained(tmp_path)
    x = torch.randint(7, 11, (1, 30))
    torch.testing.assert_close(model.eval()(x), again.eval()(x))


def test_gradient_checkpointing_same_gradients():
    a, b = tiny(), tiny()
    b.config.gradient_checkpointing = True
    x = torch.randint(7, 11, (2, 40))
    for m in (a, b):
        m.train()
        m.loss(x[:, :-1], x[:, 1:]).backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=n)
