"""Hyena operator: data-controlled gates interleaved with implicitly parametrized long convolutions.

Poli et al. 2023, "Hyena Hierarchy: Towards Larger Convolutional Language Models". Sec. 3.1
(the order-N recurrence), Sec. 3.2-3.3 (implicit filters: an FFN over positional features, times
a decaying window), Algorithm 1 (Projection), Algorithm 2 (Hyena Filter), Algorithm 3 (Forward).
Long convolutions run as FFT convolutions (Sec. 3.3, "fast convolution"; ``fft_conv``).

Parameter names and shapes follow the official HyenaDNA Hugging Face port (``HyenaOperator`` with
``in_proj``, ``short_filter``, ``filter_fn`` = ``HyenaFilter`` with ``pos_emb``, ``implicit_filter``,
``modulation.deltas`` and ``bias``, then ``out_proj``), so HyenaDNA checkpoints map onto it.
Two differences from that port: the positional features are computed on demand for any length
(O(L) memory, and sequences longer than ``l_max`` are not cut), and each ``Sin`` in the filter FFN
is its own module (the port shares one; safetensors cannot store tied tensors, and a checkpoint's
three ``freq`` copies load into the three modules unchanged).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones.base import Mixer
from seqverse.core.backbones.fftconv import fft_conv


def short_conv(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Causal depthwise convolution of ``u[B, C, L]`` with ``weight[C, 1, K]`` as K shifted
    multiply-adds (Algorithm 1's short filter); PyTorch's depthwise conv backward is slow on CPU."""
    K, L = weight.shape[-1], u.shape[-1]
    u = F.pad(u, (K - 1, 0))
    y = bias[:, None] + weight[:, 0, K - 1, None] * u[..., K - 1 :]
    for j in range(K - 1):  # tap j sees the input K - 1 - j steps back
        y = y + weight[:, 0, j, None] * u[..., j : j + L]
    return y


def short_conv_ref(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The same as the official code writes it: ``Conv1d(padding=K-1, groups=C)``, first L outputs."""
    K, L = weight.shape[-1], u.shape[-1]
    return F.conv1d(u, weight, bias, padding=K - 1, groups=u.shape[1])[..., :L]


class PositionalEmbedding(nn.Module):
    """Complex exponential positional features ``z_t`` fed to the filter FFN (Sec. 3.3, Appendix).

    For position ``i``: ``t = i / (seq_len - 1)`` (so ``t`` runs 0..1 over ``seq_len`` = ``l_max``),
    ``w = 2 pi i / seq_len`` and ``z = [t, Re exp(-i f_k w), Im exp(-i f_k w)]`` for
    ``(emb_dim - 1) // 2`` bands ``f_k = linspace(1e-4, bands - 1, bands)``, exactly the official
    table, but computed only for the positions asked for. A checkpoint that stores the table
    (``pos_emb.z``, ``pos_emb.t``, shape ``[1, l_max, emb_dim]``/``[1, l_max, 1]``) loads into the
    ``z``/``t`` buffers, which are then used for the positions they cover.
    """

    def __init__(self, emb_dim: int, seq_len: int):
        super().__init__()
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ValueError(f"emb_dim must be odd and >= 3 (time, cosine and sine features), got {emb_dim}")
        if seq_len < 2:
            raise ValueError(f"l_max must be at least 2, got {seq_len}")
        self.emb_dim, self.seq_len = emb_dim, seq_len
        self.register_buffer("z", None)  # set only by loading a checkpoint that stores the table
        self.register_buffer("t", None)

    def forward(self, stop: int, start: int = 0, device=None, dtype=None):
        """``z[1, stop - start, emb_dim]`` and ``t[1, stop - start, 1]`` for positions ``start..stop-1``."""
        n = 0 if self.z is None else min(self.z.shape[1], stop)  # positions a loaded table covers
        i = torch.arange(max(start, n), stop, device=device, dtype=torch.float64)[:, None]
        t = i / (self.seq_len - 1)
        w = 2 * math.pi * i / self.seq_len
        bands = (self.emb_dim - 1) // 2
        f = torch.linspace(1e-4, bands - 1, bands, device=device, dtype=torch.float64)
        z = torch.cat([t, torch.cos(f * w), -torch.sin(f * w)], dim=-1)  # exp(-i f w): real, imaginary
        if start < n:
            z = torch.cat([self.z[0, start:stop].to(z), z])
            t = torch.cat([self.t[0, start:stop].to(t), t])
        return z[None].to(dtype), t[None].to(dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("z", "t"):  # take the table's shape from the checkpoint, or drop it if it has none
            value = state_dict.get(prefix + name)
            setattr(self, name, None if value is None else torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ExponentialModulation(nn.Module):
    """The window of Sec. 3.3: ``h_t <- h_t * (exp(-alpha |t|) + shift)``, one decay rate per channel.

    Rates ``alpha`` span ``[-log(target) / slow_decay_pct, -log(target) / fast_decay_pct]`` so the
    slowest channel falls to ``target`` at ``t = slow_decay_pct`` and the fastest at ``fast_decay_pct``.
    """

    def __init__(self, d_model: int, fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2, shift=0.05):
        super().__init__()
        self.shift = shift
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, d_model)[None, None])

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        decay = torch.exp(-t * self.deltas.abs())
        return x * (decay + self.shift)


class Sin(nn.Module):
    """Periodic activation ``sin(w x)`` of the filter FFN, with a trainable frequency per unit (Sec. 3.3)."""

    def __init__(self, dim: int, w: float = 1.0, train_freq: bool = True):
        super().__init__()
        freq = w * torch.ones(1, dim)
        if train_freq:
            self.freq = nn.Parameter(freq)
        else:
            self.register_buffer("freq", freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class HyenaFilter(nn.Module):
    """Implicit long filter ``h_t = Window(t) * FFN(PositionalEncoding(t))`` (Sec. 3.3, Eq. 7; Algorithm 2).

    ``implicit_filter`` is Linear(emb_dim, order) -> Sin -> [Linear(order, order) -> Sin] x
    num_inner_mlps -> Linear(order, d_model, no bias); ``bias`` is the per-channel skip term ``D``
    added to every long convolution: ``y = h * u + D u``.
    """

    def __init__(
        self,
        d_model: int,
        emb_dim: int = 3,
        order: int = 16,
        seq_len: int = 1024,
        dropout: float = 0.0,
        w: float = 1.0,
        num_inner_mlps: int = 2,
        train_freq: bool = True,
    ):
        super().__init__()
        self.d_model = d_model
        self.bias = nn.Parameter(torch.randn(d_model))
        self.dropout = nn.Dropout(dropout)
        self.pos_emb = PositionalEmbedding(emb_dim, seq_len)
        self.implicit_filter = nn.Sequential(nn.Linear(emb_dim, order), Sin(order, w, train_freq))
        for _ in range(num_inner_mlps):
            self.implicit_filter.append(nn.Linear(order, order))
            self.implicit_filter.append(Sin(order, w, train_freq))
        self.implicit_filter.append(nn.Linear(order, d_model, bias=False))
        self.modulation = ExponentialModulation(d_model)

    def filter(self, L: int, start: int = 0) -> torch.Tensor:
        """Filter taps ``h[1, L - start, d_model]`` at positions ``start..L-1`` (dropout on the taps)."""
        weight = self.implicit_filter[0].weight
        z, t = self.pos_emb(L, start, device=weight.device, dtype=weight.dtype)
        h = self.modulation(t, self.implicit_filter(z))
        return self.dropout(h)

    def forward(self, x: torch.Tensor, L: int, k: torch.Tensor | None = None, bias=None) -> torch.Tensor:
        """Long convolution plus skip, ``h * x + D x``, for ``x[B, d, L]`` and ``k[d, L]``."""
        if k is None:
            k = self.filter(L)[0].transpose(0, 1)
        bias = self.bias if bias is None else bias
        return fft_conv(x, k) + bias[:, None] * x


class HyenaOperator(Mixer):
    """The order-N Hyena operator (Sec. 3.1, Algorithm 3), the mixer registered as ``"hyena"``.

    Projection (Algorithm 1): ``in_proj`` to ``(order + 1) * d_model`` channels, a short causal
    depthwise convolution (``short_filter``, kernel ``short_filter_order``), split into gates
    ``x^0 .. x^(N-1)`` and the value ``v``. Recurrence as the authors' code (safari, HyenaDNA) runs
    it, and so as the checkpoints expect: ``v <- h^n * (x^n . v) + D^n (x^n . v)`` for
    ``n = N-1 .. 1``, then ``y = x^0 . v`` and ``out_proj``. That is ``order`` gates and
    ``order - 1`` implicit long filters (``order=2``: ``y = x^0 . (h * (x^1 . v))``, the H3 form of
    Sec. 3.1); Algorithm 3 as printed, ``v <- x^n . (h^n * v)``, would take one more long filter.

    ``l_max`` is the length over which the filter's positional time runs 0..1 (``t = i / (l_max - 1)``):
    shorter inputs use a prefix of the filter, longer ones extend the positional features. It sets
    the filter's resolution, so set it to the training length, as the paper and HyenaDNA do.
    ``step`` is exact: it caches every past input of each long convolution (like a KV cache) and
    takes a dot product with the filter, O(t) per step.
    """

    def __init__(
        self,
        d_model: int,
        l_max: int = 1024,
        order: int = 2,
        filter_order: int = 64,
        emb_dim: int = 3,
        short_filter_order: int = 3,
        num_inner_mlps: int = 2,
        w: float = 1.0,
        dropout: float = 0.0,
        filter_dropout: float = 0.0,
        train_freq: bool = True,
    ):
        super().__init__()
        if order < 2:
            raise ValueError(f"order must be at least 2, got {order}")
        if short_filter_order < 1:
            raise ValueError(f"short_filter_order must be at least 1, got {short_filter_order}")
        self.d_model, self.l_max, self.order = d_model, l_max, order
        inner_width = d_model * (order + 1)
        self.dropout = nn.Dropout(dropout)
        self.in_proj = nn.Linear(d_model, inner_width)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(
            inner_width, inner_width, short_filter_order, padding=short_filter_order - 1, groups=inner_width
        )
        self.filter_fn = HyenaFilter(
            d_model * (order - 1),
            emb_dim=emb_dim,
            order=filter_order,
            seq_len=l_max,
            dropout=filter_dropout,
            w=w,
            num_inner_mlps=num_inner_mlps,
            train_freq=train_freq,
        )

    def filters(self, L: int, start: int = 0) -> torch.Tensor:
        """The long filters ``h[order - 1, d_model, L - start]``, in the order the recurrence uses them."""
        k = self.filter_fn.filter(L, start)[0]  # [L, (o d)]
        return k.transpose(0, 1).reshape(self.order - 1, self.d_model, L - start)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        L = u.shape[1]
        u = self.in_proj(u).transpose(1, 2)  # [B, (N+1) D, L]
        uc = short_conv(u, self.short_filter.weight, self.short_filter.bias)  # causal, [B, (N+1) D, L]
        *x, v = uc.split(self.d_model, dim=1)
        k = self.filters(L)
        bias = self.filter_fn.bias.view(self.order - 1, self.d_model)
        for o, x_i in enumerate(reversed(x[1:])):
            v = self.dropout(v * x_i)
            v = self.filter_fn(v, L, k=k[o], bias=bias[o])
        return self.out_proj((v * x[0]).transpose(1, 2))

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        """Short-filter window (the last ``short_filter_order - 1`` projected inputs), and, empty at
        first, each long convolution's input history and the filter taps seen so far."""
        param = self.in_proj.weight
        device, dtype = device or param.device, dtype or param.dtype
        k = self.short_filter.kernel_size[0]
        n, d = self.order - 1, self.d_model
        return {
            "window": torch.zeros(batch_size, d * (self.order + 1), k - 1, device=device, dtype=dtype),
            "v": torch.zeros(batch_size, n, d, 0, device=device, dtype=dtype),
            "h": torch.zeros(n, d, 0, device=device, dtype=dtype),
        }

    def step(self, u_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        t = state["h"].shape[-1]
        window = torch.cat([state["window"], self.in_proj(u_t)[..., None]], dim=-1)  # [B, (N+1) D, K]
        uc = (window * self.short_filter.weight[:, 0]).sum(-1) + self.short_filter.bias
        *x, v = uc.split(self.d_model, dim=-1)
        h = torch.cat([state["h"], self.filters(t + 1, start=t)], dim=-1)  # taps 0..t, [N-1, D, t+1]
        bias = self.filter_fn.bias.view(self.order - 1, self.d_model)
        history = []
        for o, x_i in enumerate(reversed(x[1:])):
            v = self.dropout(v * x_i)
            past = torch.cat([state["v"][:, o], v[..., None]], dim=-1)  # inputs 0..t, [B, D, t+1]
            history.append(past)
            v = (past * h[o].flip(-1)).sum(-1) + bias[o] * v  # (h * v)_t = sum_j h_j v_(t-j)
        y_t = self.out_proj(v * x[0])
        return y_t, {"window": window[..., 1:], "v": torch.stack(history, dim=1), "h": h}
