"""Hyena: step == forward, causality, orders 2 and 3, the filter's positional features and decay
window, the HyenaDNA parameter layout, and save/load."""

import math

import pytest
import torch

from seqverse.core.backbones import Backbone, build
from seqverse.core.backbones.hyena import HyenaOperator, PositionalEmbedding, short_conv, short_conv_ref


def operator(order=2, l_max=16, d_model=8, **kw):
    torch.manual_seed(0)
    return HyenaOperator(d_model, l_max=l_max, order=order, filter_order=16, **kw)


def run_steps(mixer, x):
    state = mixer.init_state(x.shape[0])
    ys = []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("L", [13, 23], ids=["L<l_max", "L>l_max"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_step_equals_forward(order, L, dtype, tol):
    mixer = operator(order, emb_dim=5).to(dtype).eval()
    x = torch.randn(2, L, 8, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(mixer, x), mixer(x), rtol=tol, atol=tol)


@pytest.mark.parametrize("K", [1, 3, 4])
def test_short_conv_equals_conv1d(K):
    torch.manual_seed(0)
    u = torch.randn(2, 6, 11, dtype=torch.float64)
    weight, bias = torch.randn(6, 1, K, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    fast, ref = short_conv(u, weight, bias), short_conv_ref(u, weight, bias)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [2, 3])
def test_causal_and_long_range_by_gradient(order):
    mixer = operator(order).double()
    x = torch.randn(2, 21, 8, dtype=torch.float64, requires_grad=True)
    t = 14
    (mixer(x)[:, t] * torch.randn(8, dtype=torch.float64)).sum().backward()
    # an FFT convolution leaks round-off (~1e-19 here) into the future, never more
    future = x.grad[:, t + 1 :].abs().max()
    assert future < 1e-12 * x.grad.abs().max(), "output at t depends on inputs after t"
    # position 0 lies far outside the short filter (3 taps): only the long convolution reaches it
    assert x.grad[:, 0].abs().min() > 0


def test_positional_features_are_the_official_table():
    # the HyenaDNA table, built as the official code builds it (linspace, complex exponential)
    emb_dim, seq_len = 5, 40
    bands = (emb_dim - 1) // 2
    t = torch.linspace(0, 1, seq_len, dtype=torch.float64)[None, :, None]
    w = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len, dtype=torch.float64)[None, :, None] / seq_len
    f = torch.linspace(1e-4, bands - 1, bands, dtype=torch.float64)[None, None]
    z = torch.exp(-1j * f * w)
    z = torch.cat([t, z.real, z.imag], dim=-1)

    pos = PositionalEmbedding(emb_dim, seq_len)
    z_ours, t_ours = pos(seq_len, dtype=torch.float64)
    torch.testing.assert_close(z_ours, z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t_ours, t, rtol=1e-12, atol=1e-12)
    # computed on demand: any window of positions, and past l_max the features keep going
    torch.testing.assert_close(pos(30, start=7, dtype=torch.float64)[0], z[:, 7:30])
    longer, _ = pos(3 * seq_len, dtype=torch.float64)
    torch.testing.assert_close(longer[:, :seq_len], z)
    assert longer[0, -1, 0] > 2.9  # t = i / (l_max - 1) runs past 1


def test_filter_is_ffn_times_decaying_window():
    mixer = operator(l_max=64, d_model=16).double()
    fn = mixer.filter_fn
    h = fn.filter(64)[0]  # [L, D]
    z, t = fn.pos_emb(64, dtype=torch.float64)
    ffn = fn.implicit_filter(z)[0]
    # Sec. 3.3: Window(t) = exp(-alpha t) + shift, rates spread so channels reach 1e-2 at t = 1.5 ... 0.3
    # (the official buffer is a float32 linspace, kept so checkpoints load unchanged)
    alpha = torch.linspace(math.log(100) / 1.5, math.log(100) / 0.3, 16).double()
    window = torch.exp(-alpha * t[0]) + 0.05
    torch.testing.assert_close(h, ffn * window, rtol=1e-12, atol=1e-12)
    # the envelope decays: the fastest channel's taps late in the filter are far below its first ones
    assert window[1:].le(window[:-1]).all()
    fast = h[:, -1].abs()
    assert fast[-16:].max() < 0.25 * fast[:4].max()


def test_filter_prefix_and_length_extension():
    mixer = operator(l_max=16).double()
    k16 = mixer.filters(16)
    torch.testing.assert_close(mixer.filters(9), k16[..., :9], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(mixer.filters(40)[..., :16], k16, rtol=1e-14, atol=1e-14)
    tail = mixer.filters(40, start=16)
    torch.testing.assert_close(tail, mixer.filters(40)[..., 16:], rtol=1e-14, atol=1e-14)


def test_hyenadna_parameter_layout():
    mixer = HyenaOperator(16, l_max=1024, order=2, filter_order=64)
    shapes = {k: tuple(v.shape) for k, v in mixer.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (48, 16),
        "in_proj.bias": (48,),
        "out_proj.weight": (16, 16),
        "out_proj.bias": (16,),
        "short_filter.weight": (48, 1, 3),
        "short_filter.bias": (48,),
        "filter_fn.bias": (16,),
        "filter_fn.implicit_filter.0.weight": (64, 3),
        "filter_fn.implicit_filter.0.bias": (64,),
        "filter_fn.implicit_filter.1.freq": (1, 64),
        "filter_fn.implicit_filter.2.weight": (64, 64),
        "filter_fn.implicit_filter.2.bias": (64,),
        "filter_fn.implicit_filter.3.freq": (1, 64),
        "filter_fn.implicit_filter.4.weight": (64, 64),
        "filter_fn.implicit_filter.4.bias": (64,),
        "filter_fn.implicit_filter.5.freq": (1, 64),
        "filter_fn.implicit_filter.6.weight": (16, 64),
        "filter_fn.modulation.deltas": (1, 1, 16),
    }
    assert HyenaOperator(16, order=3).filter_fn.implicit_filter[-1].weight.shape == (32, 64)


def test_checkpoint_table_loads_and_is_used():
    mixer = operator(l_max=16).double()
    state = mixer.state_dict()
    z, t = mixer.filter_fn.pos_emb(16, dtype=torch.float64)
    # a trained HyenaDNA checkpoint stores pos_emb.z (trained at a tiny learning rate) and pos_emb.t
    state["filter_fn.pos_emb.z"] = z + 0.1
    state["filter_fn.pos_emb.t"] = t
    other = operator(l_max=16).double()
    other.load_state_dict(state)
    torch.testing.assert_close(other.filter_fn.pos_emb(10)[0], z[:, :10] + 0.1)
    assert not torch.allclose(other.filters(16), mixer.filters(16))
    # past the table the features continue by formula, in forward and step alike
    torch.testing.assert_close(other.filter_fn.pos_emb(30)[0][:, 16:], mixer.filter_fn.pos_emb(30)[0][:, 16:])
    x = torch.randn(1, 23, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(other.eval(), x), other(x), rtol=1e-10, atol=1e-10)


def test_invalid_options_are_named():
    with pytest.raises(ValueError, match="emb_dim"):
        HyenaOperator(8, emb_dim=4)
    with pytest.raises(ValueError, match="order"):
        HyenaOperator(8, order=1)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("hyena", d_model=16, n_layers=2).eval()
    x = torch.randn(2, 19, 16)
    model.save_pretrained(tmp_path)
    loaded = Backbone.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(run_steps(loaded, x), model(x), rtol=1e-4, atol=1e-4)
