"""S4, S4D and LSSL: every fast path against its plain reference (FFT convolution, Cauchy kernel,
DPLR generating function, Vandermonde and Krylov kernels, Woodbury and triangular discretisation),
the papers' initialisations, step == forward, causality, gradients and save/load."""

import math

import pytest
import torch

from seqverse.core.backbones import Backbone, build
from seqverse.core.backbones.fftconv import direct_conv_ref, fft_conv
from seqverse.core.backbones.hippo import (
    bilinear,
    bilinear_dplr,
    bilinear_lower,
    conj_full,
    dplr_dense,
    hippo_legs,
    nplr_legs,
)
from seqverse.core.backbones.lssl import LSSL, krylov, krylov_kernel, krylov_kernel_ref
from seqverse.core.backbones.s4 import S4, c_tilde, c_tilde_ref, cauchy, cauchy_ref, dense_kernel_ref
from seqverse.core.backbones.s4d import S4D, vandermonde_kernel, vandermonde_kernel_ref

MIXERS = {"s4": S4, "s4d": S4D, "lssl": LSSL}
F64 = torch.float64


def mixer(name, d_model=6, d_state=8, **kw):
    torch.manual_seed(0)
    return MIXERS[name](d_model, d_state=d_state, **kw)


def spread_dt(m, dts=(1e-3, 1e-2, 0.1, 0.5)):
    """Timescales from the init range and beyond, so the kernels decay slowly and quickly."""
    with torch.no_grad():
        m.log_dt.copy_(
            torch.log(torch.tensor(dts, dtype=m.log_dt.dtype)).repeat(m.log_dt.numel())[: m.log_dt.numel()]
        )
    return m


def close(a, b, rtol):
    """Equal to ``rtol`` relative to the largest entry (kernels decay, so entrywise rtol is meaningless)."""
    torch.testing.assert_close(a, b, rtol=0, atol=rtol * b.abs().max().item())


# ---- FFT convolution -------------------------------------------------------------------------------


@pytest.mark.parametrize("L", [1, 2, 7, 64])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_fft_conv_equals_direct_sum(L, dtype, tol):
    torch.manual_seed(L)
    u, k = torch.randn(3, 4, L, dtype=dtype), torch.randn(4, L, dtype=dtype)
    close(fft_conv(u, k), direct_conv_ref(u, k), tol)
    # a kernel longer than the input is cut to L taps
    k_long = torch.randn(4, L + 5, dtype=dtype)
    close(fft_conv(u, k_long), direct_conv_ref(u, k_long[:, :L]), tol)


def test_direct_conv_ref_is_the_causal_sum():
    u, k = torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([[1.0, 10.0, 100.0]])
    assert direct_conv_ref(u, k).tolist() == [[[1.0, 12.0, 123.0]]]


# ---- HiPPO and discretisation -------------------------------------------------------------------------


@pytest.mark.parametrize("N", [2, 8, 64])
def test_nplr_form_reconstructs_hippo_legs(N):
    A, B = hippo_legs(N)
    assert A[3 % N, 3 % N] == -(3 % N + 1) and torch.all(torch.triu(A, 1) == 0)
    Lambda, P, B_t, V = nplr_legs(N)
    V = conj_full(V)
    torch.testing.assert_close(
        V @ dplr_dense(conj_full(Lambda), conj_full(P)) @ V.mH, A.to(V.dtype), rtol=0, atol=1e-11
    )
    torch.testing.assert_close(V @ conj_full(B_t), B.to(V.dtype), rtol=0, atol=1e-11)
    torch.testing.assert_close(V.mH @ V, torch.eye(N, dtype=V.dtype), rtol=0, atol=1e-12)  # unitary
    assert torch.allclose(Lambda.real, torch.tensor(-0.5, dtype=F64)) and torch.all(Lambda.imag > 0)


def test_fast_bilinear_forms_equal_the_dense_solve():
    torch.manual_seed(0)
    dt = torch.tensor([1e-3, 0.1, 0.9], dtype=F64)
    Lambda, P, B = (conj_full(t + 0.1 * torch.randn_like(t)).repeat(3, 1) for t in nplr_legs(8)[:3])
    for fast, dense in zip(
        bilinear_dplr(Lambda, P, B, dt), bilinear(dplr_dense(Lambda, P), B, dt), strict=True
    ):
        close(fast, dense, 1e-13)
    A, B = hippo_legs(8)
    for fast, dense in zip(bilinear_lower(A, B, dt), bilinear(A, B, dt), strict=True):
        close(fast, dense, 1e-13)


# ---- kernels: fast against reference ---------------------------------------------------------------------


def test_cauchy_in_chunks_equals_reference_values_and_gradients():
    torch.manual_seed(0)
    H, J, N, F = 3, 4, 6, 11
    v, z, w = (
        torch.randn(*s, dtype=torch.complex128, requires_grad=True) for s in ((H, J, N), (H, F), (H, N))
    )
    g = torch.randn(H, J, F, dtype=torch.complex128)
    fast = cauchy(v, z, w, chunk=4)  # three chunks, the last one short
    ref = cauchy_ref(v, z, w)
    close(fast, ref, 1e-14)
    for a, b in zip(
        torch.autograd.grad((fast * g).sum().real, (v, z, w)),
        torch.autograd.grad((ref * g).sum().real, (v, z, w)),
        strict=True,
    ):
        close(a, b, 1e-12)


@pytest.mark.parametrize("L", [1, 2, 7, 64])
def test_s4_c_tilde_real_power_equals_complex_power(L):
    A_bar, _, C = spread_dt(mixer("s4").double()).discretize()
    close(c_tilde(C, A_bar, L), c_tilde_ref(C, A_bar, L), 1e-13)


@pytest.mark.parametrize("L", [1, 2, 7, 16, 33])
def test_s4_dplr_kernel_equals_dense_power_kernel(L):
    m = spread_dt(mixer("s4").double())
    with torch.no_grad():  # away from the HiPPO init, so the identity is tested for any Lambda, P, B
        for p in (m.log_A_real, m.A_imag, m.P, m.B):
            p.add_(0.1 * torch.randn_like(p))
        A_bar, B_bar, C = m.discretize()
        close(m.kernel(L, chunk=3), dense_kernel_ref(A_bar, B_bar, C, L), 1e-11)


def test_s4_kernel_gradient_equals_dense_power_gradient():
    m = spread_dt(mixer("s4").double())
    g = torch.randn(6, 12, dtype=F64)
    grads = []
    for kernel in (lambda: m.kernel(12, chunk=2), lambda: dense_kernel_ref(*m.discretize(), 12)):
        m.zero_grad()
        (kernel() * g).sum().backward()
        grads.append([p.grad.clone() for p in (m.log_dt, m.log_A_real, m.A_imag, m.P, m.B, m.C)])
    for a, b in zip(*grads, strict=True):
        close(a, b, 1e-10)


@pytest.mark.parametrize("L", [1, 5, 17, 100])
def test_s4d_vandermonde_kernel_equals_recurrence(L):
    m = spread_dt(mixer("s4d").double())
    with torch.no_grad():
        dtA, A_bar, B_bar = m.discretize()
        C = torch.view_as_complex(m.C)
        x, recurrence = B_bar, []  # impulse response of x_t = A_bar x_{t-1} + B_bar u_t, y = 2 Re C x
        for _ in range(L):
            recurrence.append(2 * (C * x).sum(-1).real)
            x = A_bar * x
        recurrence = torch.stack(recurrence, -1)
        close(m.kernel(L), recurrence, 1e-12)
        close(vandermonde_kernel(C * B_bar, dtA, L), vandermonde_kernel_ref(C * B_bar, dtA, L), 1e-12)


@pytest.mark.parametrize("L", [1, 2, 5, 16, 17, 100])
def test_lssl_krylov_kernel_equals_power_loop(L):
    m = spread_dt(mixer("lssl").double())
    with torch.no_grad():
        A_bar, B_bar = m.discretize()
        close(krylov_kernel(A_bar, B_bar, m.C, L), krylov_kernel_ref(A_bar, B_bar, m.C, L), 1e-12)
        powers = [B_bar]
        for _ in range(L - 1):
            powers.append((A_bar @ powers[-1][..., None])[..., 0])
        close(krylov(L, A_bar, B_bar), torch.stack(powers, -1), 1e-12)


# ---- the papers' initialisations ------------------------------------------------------------------------


def test_initialisations_follow_the_papers():
    s4d, s4, lssl = mixer("s4d", d_model=64), mixer("s4", d_model=64), mixer("lssl", d_model=64)
    for m in (s4d, s4, lssl):  # dt log-uniform in [1e-3, 1e-1]
        dt = m.log_dt.exp()
        assert dt.min() >= 1e-3 and dt.max() <= 1e-1 and dt.max() / dt.min() > 10
    A = -torch.exp(s4d.log_A_real) + 1j * s4d.A_imag  # S4D-Lin: -1/2 + i pi n
    torch.testing.assert_close(A[5], -0.5 + 1j * math.pi * torch.arange(4, dtype=torch.float32))
    Lambda, P, _, _, _ = s4.double().ssm()  # S4: HiPPO-LegS, back in the original basis
    V = conj_full(nplr_legs(8)[3])
    torch.testing.assert_close(
        V @ dplr_dense(Lambda[3], P[3]) @ V.mH, hippo_legs(8)[0].to(V.dtype), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(lssl.A, hippo_legs(8, dtype=torch.float32)[0])


# ---- the mixers: step == forward, causality, gradients, save/load ----------------------------------------


def run_steps(m, x):
    state = m.init_state(x.shape[0], dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("L", [1, 2, 13])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (torch.float32, 1e-4)])
def test_step_equals_forward(name, L, dtype, tol):
    m = spread_dt(mixer(name)).to(dtype).eval()
    x = torch.randn(2, L, 6, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(m, x), m(x), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", MIXERS)
def test_causal_and_long_range_by_gradient(name):
    m = mixer(name).double()
    x = torch.randn(2, 21, 6, dtype=F64, requires_grad=True)
    t = 14
    (m(x)[:, t] * torch.randn(6, dtype=F64)).sum().backward()
    # an FFT convolution leaks round-off (~1e-18) into the future, never more
    assert x.grad[:, t + 1 :].abs().max() < 1e-12 * x.grad.abs().max(), (
        "output at t depends on inputs after t"
    )
    assert x.grad[:, 0].abs().min() > 0  # position 0 reaches t through the long convolution


@pytest.mark.parametrize("name", MIXERS)
def test_every_parameter_gets_a_gradient(name):
    m = mixer(name)
    m(torch.randn(2, 17, 6)).square().sum().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", MIXERS)
def test_odd_d_state_is_named(name):
    if name == "lssl":  # a dense real state has no conjugate pairs: any N works
        assert mixer(name, d_state=5)(torch.randn(1, 4, 6)).shape == (1, 4, 6)
    else:
        with pytest.raises(ValueError, match="d_state must be even"):
            mixer(name, d_state=5)


@pytest.mark.parametrize("name", MIXERS)
def test_build_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build(name, d_model=16, n_layers=2).eval()
    x = torch.randn(2, 9, 16)
    model.save_pretrained(tmp_path)
    loaded = Backbone.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
