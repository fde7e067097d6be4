"""ProLLaMA stages: official LoRA recipes, packing, answer-only loss, KV-cached scoring = plain scoring."""

import pytest
import torch

from seqverse.genomics.prollama import base, stages, tasks

TEXT = ("the quick brown fox jumps over the lazy dog\n" * 40 + "Seq=<MKVLAAGIVALLLAAGCSSSKEETPKAEEAPAA>\n" * 5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer LLaMA with a BPE trained on a few lines, saved as an HF directory."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "text.txt").write_text(TEXT)
    tok = base.train_tokenizer(d / "text.txt", vocab_size=300)
    model = base.new_model(tok, base.BaseConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, max_position_embeddings=512))
    model.save_pretrained(d / "model")
    tok.save_pretrained(d / "model")
    return d / "model"


def test_lora_recipes_match_official_scripts():
    c1, c2 = stages.lora_config(stages.STAGE1), stages.lora_config(stages.STAGE2)
    targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (c1.r, c1.lora_alpha, c1.lora_dropout, set(c1.target_modules)) == (128, 256, 0.05, targets)
    assert set(c1.modules_to_save) == {"embed_tokens", "lm_head"}
    assert (c2.r, c2.lora_alpha, c2.lora_dropout, set(c2.target_modules)) == (64, 128, 0.05, targets)
    assert not c2.modules_to_save
    assert (stages.STAGE1.lr, stages.STAGE1.schedule, stages.STAGE1.warmup) == (5e-5, "cosine", 0.05)
    assert (stages.STAGE2.lr, stages.STAGE2.warmup) == (5e-5, 0.03)


def test_stage1_trains_embeddings_and_lm_head_in_full(tiny):
    from peft import get_peft_model

    model, _ = stages.load_causal_lm(tiny)
    peft_model = get_peft_model(model, stages.lora_config(stages.STAGE1))
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("embed_tokens.modules_to_save" in n for n in names)
    assert any("lm_head.modules_to_save" in n for n in names)
    assert all("lora_" in n or "modules_to_save" in n for n in names)


def test_pack_blocks_concatenates_and_drops_remainder():
    blocks = base.pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    assert blocks.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_instruction_tasks_and_answer_only_labels(tiny):
    _, tok = stages.load_causal_lm(tiny)
    recs = stages.instruction_records([("p1", "MKV", "Pkinase")])
    assert recs[0] == {"instruction": "[Determine superfamily]", "input": "Seq=<MKV>", "output": "Superfamily=<Pkinase>"}
    assert recs[1] == {"instruction": "[Generate by superfamily]", "input": "Superfamily=<Pkinase>", "output": "Seq=<MKV>"}
    ids, labels = stages.encode_instruction(tok, recs[1], max_len=512)
    source = tok("[Generate by superfamily] Superfamily=<Pkinase>")["input_ids"]
    target = tok("Seq=<MKV></s>", add_special_tokens=False)["input_ids"]
    assert ids.tolist() == source + target
    assert labels.tolist() == [-100] * len(source) + target
    assert target[-1] == tok.eos_token_id and source[0] == tok.bos_token_id


def test_balance_repeats_small_families_towards_the_largest():
    ex = [(f"k{i}", "MKV", "Pkinase") for i in range(9)] + [("f1", "MAV", "fn3"), ("f2", "MAW", "fn3")] + \
         [(f"r{i}", "MKL", "RRM_1") for i in range(4)]
    out = stages.balance_families(ex)
    counts = {fam: sum(1 for *_, f in out if f == fam) for fam in ("Pkinase", "fn3", "RRM_1")}
    assert counts == {"Pkinase": 9, "fn3": 2 * round(9 / 2), "RRM_1": 4 * round(9 / 4)}  # 9, 8 (4 x 2), 8 (2 x 4)
    assert {e for e in out} == set(ex) and stages.balance_families([]) == []


def test_square_root_balance_meets_halfway():
    ex = [(f"k{i}", "MKV", "Pkinase") for i in range(16)] + [("f1", "MAV", "fn3")] + \
         [(f"r{i}", "MKL", "RRM_1") for i in range(4)]
    out = stages.balance_families(ex, power=0.5)
    counts = {fam: sum(1 for *_, f in out if f == fam) for fam in ("Pkinase", "fn3", "RRM_1")}
    assert counts == {"Pkinase": 16, "fn3": 4, "RRM_1": 8}  # sqrt(16 / 1) = 4 copies, sqrt(16 / 4) = 2 copies


def test_answer_loss_ignores_the_prompt(tiny):
    model, tok = stages.load_causal_lm(tiny)
    rec = stages.instruction_records([("p1", "MKVLA", "fn3")])[0]
    batch = stages.collate_instructions(tok.pad_token_id)([stages.encode_instruction(tok, rec, 512)])
    loss = stages.answer_loss(model, batch)
    logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
    labels = batch["labels"][0, 1:]
    keep = labels != -100
    manual = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(loss, manual, atol=1e-5)


def test_per_record_loss_is_the_mean_of_each_records_own_loss(tiny):
    model, tok = stages.load_causal_lm(tiny)
    recs = stages.instruction_records([("p1", "MKVLAAGIVALLLAAG", "fn3"), ("p2", "MAV", "Pkinase")])
    items = [stages.encode_instruction(tok, r, 512) for r in recs]
    batch = stages.collate_instructions(tok.pad_token_id)(items)
    per_record = stages.answer_loss_per_record_part(model, batch)
    alone = [stages.answer_loss(model, stages.collate_instructions(tok.pad_token_id)([it])) for it in items]
    assert torch.allclose(per_record, torch.stack(alone).mean(), atol=1e-5)
    token_mean = stages.answer_loss_part(model, batch)  # the official weighting differs when answers differ in length
    assert not torch.allclose(per_record, token_mean, atol=1e-4)


def test_cached_candidate_scoring_equals_reference(tiny):
    model, tok = stages.load_causal_lm(tiny)
    prompt = stages.prompt_text(stages.DETERMINE, "Seq=<MKVLAAGIV>")
    cands = ["Superfamily=<Pkinase>", "Superfamily=<fn3>", "Superfamily=<RRM_1>"]
    fast = tasks.candidate_logprobs(model.eval(), tok, prompt, cands)
    ref = tasks.candidate_logprobs_reference(model, tok, prompt, cands)
    assert torch.allclose(fast, ref, atol=1e-4)


def test_stage_training_runs_and_merges(tiny, tmp_path):
    texts = ["Seq=<MKVLAAGIVALLLAAGCSSSK>"] * 20
    card = stages.continual_pretrain(tiny, texts, tmp_path / "s1", steps=2, batch_size=2, block_size=16)
    assert card["steps_done"] == 2 and (tmp_path / "s1" / "model.safetensors").is_file()
    card2 = stages.instruction_tune(tmp_path / "s1", [("a", "MKVLA", "fn3"), ("b", "MAAGG", "Pkinase")],
                                    tmp_path / "s2", steps=2, batch_size=2)
    assert card2["superfamilies"] == ["Pkinase", "fn3"]
    model = tasks.ProLLaMA.from_dir(tmp_path / "s2")
    assert not any("lora" in n for n, _ in model.model.named_parameters())
    seqs = model.generate(2, superfamily="fn3", seed=1, decoding=tasks.Decoding(max_new_tokens=8))
    assert len(seqs) <= 2 and all(set(s) <= set(tasks.AMINO_ACIDS) for s in seqs)
    pred = model.predict([("x", "MKVLA")])
    assert pred[0]["superfamily"] in ("Pkinase", "fn3") and 0.5 <= pred[0]["score"] <= 1


def test_not_a_causal_lm_is_a_user_error(tmp_path):
    from seqverse.core.clikit import InputError

    with pytest.raises(InputError, match="no config.json"):
        stages.load_causal_lm(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(InputError, match="not a causal language model"):
        stages.load_causal_lm(tmp_path)


def test_random_twin_keeps_the_base_architecture_and_tokenizer(tiny, tmp_path):
    """The protein-only ablation starts from the trained base's own shape, at other (random) weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    twin = base.random_base(tiny, tmp_path / "twin", seed=1)
    a, b = AutoConfig.from_pretrained(tiny), AutoConfig.from_pretrained(twin)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        assert getattr(a, key) == getattr(b, key), key
    assert (tmp_path / "twin" / "tokenizer.json").read_text() == (tiny / "tokenizer.json").read_text()
    wa = AutoModelForCausalLM.from_pretrained(tiny).model.layers[0].self_attn.q_proj.weight
    wb = AutoModelForCausalLM.from_pretrained(twin).model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(wa, wb)
