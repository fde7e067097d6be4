"""Prediction with the label-prior correction (answer_prior.json): the arithmetic, the file checks, the CLI switch."""

import json
import shutil

import pytest
import torch

from seqverse.core.clikit import InputError
from seqverse.genomics.prollama import tasks
from seqverse.genomics.prollama.tasks import ASSETS, PRIOR_FILE, ProLLaMA

SEQS = ["MKVLAAGIVALLLAAGCSSSKEEL", "MSDNQRLVKGHHLLLEVRRAIPG", "MAAGGWWTPRSLLKKEEDDVVIIL"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("prollama")
    for f in ASSETS.iterdir():
        if f.name != PRIOR_FILE:
            shutil.copy(f, d / f.name)
    return d


def test_prior_is_the_log_mean_answer_distribution(model_dir):
    model = ProLLaMA.from_dir(model_dir)
    dists = torch.stack([model.answer_logprobs(s).exp() for s in SEQS])
    assert torch.allclose(dists.sum(1), torch.ones(3), atol=1e-5)
    assert torch.allclose(tasks.estimate_answer_prior(model, SEQS), dists.mean(0).clamp_min(1e-12).log(), atol=1e-5)


def test_prior_correction_divides_out_the_prior(model_dir, tmp_path):
    model = ProLLaMA.from_dir(model_dir)
    plain = model.predict([("a", SEQS[0])], decoding="argmax")[0]
    assert plain["superfamily"] == model.superfamilies[int(model.answer_logprobs(SEQS[0]).argmax())]
    with pytest.raises(InputError, match=PRIOR_FILE):
        model.predict([("a", SEQS[0])], decoding="prior-corrected")
    # a prior that makes the plain answer very common moves the corrected answer elsewhere
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    prior = torch.full((len(model.superfamilies),), -10.0)
    prior[model.superfamilies.index(plain["superfamily"])] = 0.0
    tasks.write_answer_prior(d, model.superfamilies, prior, {"domains": 0})
    corrected_model = ProLLaMA.from_dir(d)
    corrected = corrected_model.predict([("a", SEQS[0])])[0]  # the stored prior is used by default
    expected = torch.softmax(model.answer_logprobs(SEQS[0]) - corrected_model.log_prior, 0)
    assert corrected["superfamily"] == model.superfamilies[int(expected.argmax())] != plain["superfamily"]
    assert corrected_model.predict([("a", SEQS[0])], decoding="argmax")[0] == plain


def test_prior_file_must_match_the_model(model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    fams = json.loads((d / "superfamilies.json").read_text())
    (d / PRIOR_FILE).write_text(json.dumps({"superfamilies": fams[:-1], "log_prior": [0.0] * (len(fams) - 1)}))
    with pytest.raises(InputError, match="do not match"):
        ProLLaMA.from_dir(d)
    (d / PRIOR_FILE).write_text("{not json")
    with pytest.raises(InputError, match="not a valid answer prior"):
        ProLLaMA.from_dir(d)
