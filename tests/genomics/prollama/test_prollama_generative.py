"""Prediction through the generation view (Bayes' rule): the batched likelihoods equal the plain path."""

import json
import shutil

import pytest
import torch

from seqverse.core.clikit import InputError
from seqverse.genomics.prollama import tasks
from seqverse.genomics.prollama.stages import GENERATE, prompt_text
from seqverse.genomics.prollama.tasks import ProLLaMA

SEQ = "MKVLAAGIVALLLAAGCSSSKEEL"


def test_batched_target_logprobs_equal_the_plain_path():
    model = ProLLaMA.from_dir()
    prompts = [prompt_text(GENERATE, f"Superfamily=<{f}>") for f in model.superfamilies]
    assert len({len(model.tokenizer(p)["input_ids"]) for p in prompts}) > 1  # the padding is exercised
    target = f"Seq=<{SEQ}>"
    fast = tasks.target_logprobs(model.model, model.tokenizer, prompts, target)
    plain = tasks.target_logprobs_reference(model.model, model.tokenizer, prompts, target)
    assert torch.allclose(fast, plain, atol=1e-3)
    assert not torch.allclose(fast, fast[0].expand_as(fast))  # the family in the prompt changes the likelihood


def test_generation_view_posterior_is_normalised_bayes():
    model = ProLLaMA.from_dir()
    post = model.generation_logprobs(SEQ)
    assert torch.allclose(post.exp().sum(), torch.tensor(1.0), atol=1e-5)
    prompts = [prompt_text(GENERATE, f"Superfamily=<{f}>") for f in model.superfamilies]
    joint = tasks.target_logprobs_reference(model.model, model.tokenizer, prompts, f"Seq=<{SEQ}>")
    assert torch.allclose(post, torch.log_softmax(joint, 0), atol=1e-3)


def test_stored_decoding_is_used_and_checked(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tasks.ASSETS, d)
    tasks.write_prediction_decoding(d, "generative")
    model = ProLLaMA.from_dir(d)
    assert model.decoding == "generative"
    row = model.predict([("a", SEQ)])[0]
    post = model.generation_logprobs(SEQ).exp()
    assert row["superfamily"] == model.superfamilies[int(post.argmax())]
    assert row["score"] == pytest.approx(float(post.max()), abs=1e-4)
    combined = model.log_posterior(SEQ, "combined")
    expected = torch.log_softmax(model.log_posterior(SEQ, "prior-corrected") + model.generation_logprobs(SEQ), 0)
    assert torch.allclose(combined, expected, atol=1e-5)
    (d / tasks.PREDICTION_FILE).write_text(json.dumps({"decoding": "vote"}))
    with pytest.raises(InputError, match="unknown prediction decoding 'vote'; known: argmax"):
        ProLLaMA.from_dir(d)
    (d / tasks.PREDICTION_FILE).write_text(json.dumps({"decoding": "combined"}))
    (d / tasks.PRIOR_FILE).unlink()
    with pytest.raises(InputError, match="needs answer_prior.json"):
        ProLLaMA.from_dir(d)


def test_rerank_keeps_the_draws_the_model_rates_most_likely_of_the_family():
    model = ProLLaMA.from_dir()
    fam = model.superfamilies[0]
    short = tasks.Decoding(temperature=1.0, max_new_tokens=24)
    pool = model.generate(6, fam, seed=3, decoding=short)
    kept = model.generate(2, fam, seed=3, decoding=short, rerank=6)
    score = {s: float(model.log_posterior(s, model.decoding)[0]) for s in pool}
    assert kept == sorted(pool, key=lambda s: -score[s])[:2]
    with pytest.raises(InputError, match="smaller than the 3"):
        model.generate(3, fam, decoding=short, rerank=2)
    with pytest.raises(InputError, match="needs a superfamily"):
        model.generate(2, None, decoding=short, rerank=4)
