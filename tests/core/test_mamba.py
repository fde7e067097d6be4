"""Mamba (Gu & Dao 2023): the fast selective scan against the reference loop, the block's step mode,
causality, the official parameter layout and initialisation, and save/load."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqverse.core.backbones import Backbone, build
from seqverse.core.backbones.mamba import Mamba, selective_scan, selective_scan_ref


def scan_inputs(batch, dim, dstate, length, dtype, seed=0, delta_scale=1.0):
    """Random (u, delta, A, B, C, D, z, delta_bias), all requiring grad; A negative as S4D-Real."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()

    A = -torch.arange(1, dstate + 1, dtype=torch.float64) * (
        0.5 + torch.rand(dim, 1, generator=g, dtype=torch.float64)
    )
    return dict(
        u=rand(batch, dim, length),
        delta=rand(batch, dim, length, scale=delta_scale),
        A=A.to(dtype).requires_grad_(),
        B=rand(batch, dstate, length),
        C=rand(batch, dstate, length),
        D=rand(dim),
        z=rand(batch, dim, length),
        delta_bias=rand(dim, scale=0.5),
    )


def run(fn, inputs, grad_seed=1, **kw):
    """Outputs (out, last_state) and the gradients of a random projection of both wrt every input."""
    out, last = fn(**inputs, delta_softplus=True, return_last_state=True, **kw)
    g = torch.Generator().manual_seed(grad_seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)).sum()
    loss = loss + (last * torch.randn(last.shape, generator=g, dtype=torch.float64).to(last.dtype)).sum()
    grads = torch.autograd.grad(loss, list(inputs.values()))
    return [out, last, *grads]


NAMES = ["out", "last_state", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias"]

# (length, chunk_size, block_size): chunks that divide L and not, several blocks, a single step
CASES = [
    (64, 8, None),
    (37, 8, 16),
    (37, 5, 10),
    (50, 64, None),
    (1, None, None),
    (1, 4, 4),
    (97, None, None),
]


@pytest.mark.parametrize("length,chunk_size,block_size", CASES)
def test_selective_scan_equals_reference_float64(length, chunk_size, block_size):
    inputs = scan_inputs(2, 6, 4, length, torch.float64)
    ref = run(selective_scan_ref, inputs)
    fast = run(selective_scan, inputs, chunk_size=chunk_size, block_size=block_size)
    for name, a, b in zip(NAMES, fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("length,chunk_size,block_size", [(64, 8, None), (37, 8, 16), (1, None, None)])
def test_selective_scan_float32_within_1e4_of_float64_reference(length, chunk_size, block_size):
    inputs64 = scan_inputs(2, 8, 16, length, torch.float64)
    inputs32 = {k: v.detach().float().requires_grad_() for k, v in inputs64.items()}
    ref = run(selective_scan_ref, inputs64)
    fast = run(selective_scan, inputs32, chunk_size=chunk_size, block_size=block_size)
    for name, a, b in zip(NAMES, fast, ref, strict=True):
        assert a.dtype == torch.float32
        rel = (a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)  # dA is exactly 0 at L = 1
        assert rel < 1e-4, f"{name}: relative error {rel:.2e}"


def test_selective_scan_stable_under_strong_decay():
    """Delta * A down to about -500 (states wiped in one step): nothing overflows, values match."""
    inputs = scan_inputs(1, 4, 16, 96, torch.float64, delta_scale=8.0)
    with torch.no_grad():
        inputs["delta"][:, :, 40:48] += 30.0
    assert (F.softplus(inputs["delta"] + inputs["delta_bias"][:, None]).max() * 16) > 400
    ref = run(selective_scan_ref, inputs)
    fast = run(selective_scan, inputs, chunk_size=16, block_size=32)
    for name, a, b in zip(NAMES, fast, ref, strict=True):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_selective_scan_leaves_thread_setting_alone():
    threads = torch.get_num_threads()
    inputs = scan_inputs(1, 4, 4, 20, torch.float32)
    run(selective_scan, inputs)
    assert torch.get_num_threads() == threads


def test_official_parameter_names_shapes_and_init():
    torch.manual_seed(0)
    m = Mamba(40, d_state=16, d_conv=4, expand=2)
    d_inner, dt_rank = 80, math.ceil(40 / 16)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "A_log": (d_inner, 16),
        "D": (d_inner,),
        "in_proj.weight": (2 * d_inner, 40),
        "conv1d.weight": (d_inner, 1, 4),
        "conv1d.bias": (d_inner,),
        "x_proj.weight": (dt_rank + 2 * 16, d_inner),
        "dt_proj.weight": (d_inner, dt_rank),
        "dt_proj.bias": (d_inner,),
        "out_proj.weight": (40, d_inner),
    }
    # S4D-Real: A = -(1, 2, ..., N) on every channel; D = 1
    torch.testing.assert_close(-torch.exp(m.A_log), -torch.arange(1.0, 17.0).expand(d_inner, 16))
    assert (m.D == 1).all()
    # softplus(dt_proj.bias) is the sampled Delta, log-uniform in [dt_min, dt_max] = [1e-3, 0.1]
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert dt.log().std() > 0.5  # spread over the log range, not constant
    assert m.dt_proj.weight.abs().max() <= dt_rank**-0.5


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_step_equals_forward(dtype, tol):
    torch.manual_seed(0)
    m = Mamba(12, d_state=8, chunk_size=4).to(dtype)
    with torch.no_grad():
        m.dt_proj.bias.add_(2.0)  # larger Delta than at init, so the state does real work
    x = torch.randn(2, 23, 12, dtype=dtype)
    with torch.no_grad():
        full = m(x)
        state = m.init_state(2, dtype=dtype)
        assert state[0].shape == (2, 24, 4) and state[1].shape == (2, 24, 8)
        steps = []
        for t in range(x.shape[1]):
            y, state = m.step(x[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=tol, atol=tol)


def test_causal_by_gradient():
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, chunk_size=4).double()
    x = torch.randn(2, 30, 8, dtype=torch.float64, requires_grad=True)
    for t in (0, 13, 28):
        x.grad = None
        (m(x)[:, t] * torch.randn(8, dtype=torch.float64)).sum().backward()
        assert x.grad[:, t + 1 :].abs().max() == 0, f"output at {t} depends on later inputs"
        assert x.grad[:, t].abs().sum() > 0 and x.grad[:, : t + 1].abs().sum() > 0


def test_forward_equals_reference_scan_path():
    """The block through :func:`selective_scan` equals the block written with the reference loop."""
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, chunk_size=4).double()
    x = torch.randn(2, 19, 8, dtype=torch.float64)
    xz = m.in_proj(x)
    u, z = xz.chunk(2, dim=-1)
    u = F.silu(m.conv1d(u.transpose(1, 2))[..., :19])
    dt, B, C = m.ssm_parameters(u.transpose(1, 2))
    y = selective_scan_ref(
        u,
        dt.transpose(1, 2),
        -torch.exp(m.A_log),
        B.transpose(1, 2),
        C.transpose(1, 2),
        m.D,
        z=z.transpose(1, 2),
        delta_bias=m.dt_proj.bias,
        delta_softplus=True,
    )
    torch.testing.assert_close(m(x), m.out_proj(y.transpose(1, 2)), rtol=1e-12, atol=1e-12)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("mamba", d_model=16, n_layers=2).eval()
    assert model.config.mlp is False  # the Mamba block replaces attention and MLP (Sec. 3.4)
    x = torch.randn(2, 9, 16)
    model.save_pretrained(tmp_path)
    loaded = Backbone.from_pretrained(tmp_path).eval()
    assert set(loaded.state_dict()) == set(model.state_dict())
    assert "layers.0.mixer.A_log" in loaded.state_dict()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
