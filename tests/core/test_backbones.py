"""The contract every registered backbone meets: shapes, causality, step == forward, save/load."""

import pytest
import torch

from seqverse.core.backbones import NAMES, Backbone, build

SMALL = {
    "s4": {"d_state": 8},
    "s4d": {"d_state": 8},
    "lssl": {"d_state": 8},
    "hyena": {},
    "mamba": {},
    "attention": {"n_heads": 2},
}


def small(name, **kw):
    torch.manual_seed(0)
    return build(name, d_model=16, n_layers=2, **SMALL[name], **kw)


def test_names_are_the_six_backbones():
    assert set(NAMES) == {"s4", "s4d", "lssl", "hyena", "mamba", "attention"}


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of: s4, s4d"):
        build("transformerxl", d_model=8, n_layers=1)


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_wrong_width(name):
    model = small(name)
    assert model(torch.randn(3, 11, 16)).shape == (3, 11, 16)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(3, 11, 8))


@pytest.mark.parametrize("name", NAMES)
def test_causal_by_gradient(name):
    model = small(name).double()
    x = torch.randn(2, 12, 16, dtype=torch.float64, requires_grad=True)
    t = 6
    (model(x)[:, t] * torch.randn(16, dtype=torch.float64)).sum().backward()  # a plain sum of a LayerNorm output is constant
    # FFT kernels leak rounding noise (~1e-18) backwards; anything above 1e-12 of the signal is a real leak
    assert x.grad[:, t + 1 :].abs().max() < 1e-12 * x.grad.abs().max(), "output at t depends on inputs after t"
    assert x.grad[:, : t + 1].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_step_equals_forward(name, dtype, tol):
    model = small(name).to(dtype).eval()
    x = torch.randn(2, 17, 16, dtype=dtype)
    with torch.no_grad():
        full = model(x)
        state = model.init_state(2)
        steps = []
        for t in range(x.shape[1]):
            y_t, state = model.step(x[:, t], state)
            steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_bidirectional_sees_both_sides(name):
    model = small(name, bidirectional=True).double()
    x = torch.randn(1, 10, 16, dtype=torch.float64, requires_grad=True)
    (model(x)[:, 4] * torch.randn(16, dtype=torch.float64)).sum().backward()
    assert x.grad[:, 5:].abs().sum() > 0 and x.grad[:, :4].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    model = small(name).eval()
    x = torch.randn(2, 9, 16)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    loaded = Backbone.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_from_pretrained_names_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Backbone.from_pretrained(tmp_path / "nope")
