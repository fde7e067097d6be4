"""Causal long convolution by FFT, and the plain sum it computes.

S4 (Gu et al. 2022, Sec. 3.3 "convolutional view"), S4D, LSSL and Hyena (Poli et al. 2023, Sec. 3.3)
all apply a length-L kernel per channel: ``y[b, h, t] = sum_{s <= t} k[h, s] u[b, h, t - s]``.
Zero-padding both signals to ``2L`` turns the circular FFT product into this linear (causal)
convolution in ``O(L log L)``.
"""

from __future__ import annotations

import torch


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y = k * u`` along the last axis: ``u[B, H, L]``, ``k[H, L]`` -> ``[B, H, L]``.

    ``k`` may be shorter than ``L`` (it is zero-padded); any extra kernel taps beyond ``L`` are ignored.
    """
    L = u.shape[-1]
    k = k[..., :L]
    n = 2 * L
    u_f = torch.fft.rfft(u, n=n)
    k_f = torch.fft.rfft(k, n=n)
    y = torch.fft.irfft(u_f * k_f, n=n)[..., :L]
    return y.to(u.dtype)


def direct_conv_ref(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`fft_conv`: ``y[..., t] = sum_{s=0}^{t} k[..., s] u[..., t - s]`` in O(L^2)."""
    L = u.shape[-1]
    k = torch.nn.functional.pad(k[..., :L], (0, max(0, L - k.shape[-1])))
    y = torch.zeros_like(u)
    for t in range(L):
        # k[:, 0..t] against u[..., t..0]
        y[..., t] = (k[..., : t + 1] * u[..., : t + 1].flip(-1)).sum(-1)
    return y
