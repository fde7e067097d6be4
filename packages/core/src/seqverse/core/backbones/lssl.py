"""LSSL: the Linear State-Space Layer with a dense HiPPO-LegS state matrix.

Gu, Johnson, Goel, Saab, Dao, Rudra, Re 2021, "Combining Recurrent, Convolutional, and
Continuous-time Models with Linear State-Space Layers". Per channel ``h`` a continuous SSM
``x' = A x + B u, y = C x + D u`` (Sec. 2) with the fixed HiPPO-LegS ``A[N, N]``, ``B[N]``
(Sec. 4.1; the "LSSL-f" variant with ``A, B`` fixed, Sec. 5) and a learnable timescale ``dt_h``
per channel (Sec. 3.2: "each feature ... its own dt"), discretised with the bilinear transform
(Sec. 2.2, GBT with alpha = 1/2). The convolutional view (Sec. 3.2) uses the Krylov kernel

    K = (C B_bar, C A_bar B_bar, ..., C A_bar^{L-1} B_bar),

computed by squaring/doubling (Sec. 4.2 / Appendix: ``krylov``) rather than L matrix-vector
products, applied by FFT convolution, plus ``D u``; then GELU, dropout and a position-wise linear.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones.base import Mixer
from seqverse.core.backbones.fftconv import fft_conv
from seqverse.core.backbones.hippo import bilinear_lower, hippo_legs


def krylov(L: int, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The Krylov matrix ``[b, A b, ..., A^{L-1} b]`` (``A[..., N, N]``, ``b[..., N]`` -> ``[..., N, L]``)
    by doubling: ``X <- [X, A^{2^j} X]`` with ``A^{2^{j+1}} = (A^{2^j})^2`` (the official ``krylov``)."""
    x = b[..., None]
    while x.shape[-1] < L:
        x = torch.cat([x, A @ x[..., : L - x.shape[-1]]], dim=-1)
        if x.shape[-1] < L:
            A = A @ A
    return x


def krylov_kernel(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """``K[h, l] = C A_bar^l B_bar`` from two doubling Krylov factors and one matmul.

    Writing ``l = a m + b`` (``m`` a power of two near ``sqrt(L)``),
    ``K[a m + b] = (C A_bar^{m a}) (A_bar^b B_bar)``: the rows ``C A_bar^{m a}`` are the Krylov
    matrix of ``(A_bar^m)^T`` and ``C``, the columns ``A_bar^b B_bar`` that of ``A_bar`` and ``B_bar``.
    Work O(H N^2 sqrt(L) + H N L) and memory O(H N sqrt(L)) instead of O(H N^2 L) and O(H N L).
    """
    m = 1 << math.ceil(math.log2(max(1, L)) / 2)
    a_count = -(-L // m)
    right = krylov(min(m, L), A_bar, B_bar)  # [H, N, m]
    left = krylov(a_count, torch.linalg.matrix_power(A_bar, m).transpose(-1, -2), C)  # [H, N, a_count]
    K = left.transpose(-1, -2) @ right  # [H, a_count, m]
    return K.reshape(K.shape[0], -1)[:, :L]


def krylov_kernel_ref(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Reference: ``K_l = C A_bar^l B_bar`` by ``L`` matrix-vector products."""
    x, out = B_bar, []
    for _ in range(L):
        out.append((C * x).sum(-1))
        x = (A_bar @ x[..., None])[..., 0]
    return torch.stack(out, -1)


class LSSL(Mixer):
    """LSSL layer (fixed HiPPO-LegS ``A, B``, learnable ``dt, C, D``) then GELU and a linear."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dropout: float = 0.0,
        lr: float | None = 1e-3,
    ):
        super().__init__()
        if d_state < 1:
            raise ValueError(f"d_state must be positive, got {d_state}")
        H = d_model
        self.d_model, self.d_state = d_model, d_state
        A, B = hippo_legs(d_state, dtype=torch.float32)
        self.register_buffer("A", A, persistent=False)  # fixed (LSSL-f): a function of d_state
        self.register_buffer("B", B, persistent=False)
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_dt._optim = {"weight_decay": 0.0, **({"lr": lr} if lr is not None else {})}
        self.C = nn.Parameter(torch.randn(H, d_state))
        self.D = nn.Parameter(torch.randn(H))
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(H, H)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bilinear ``A_bar[H, N, N]``, ``B_bar[H, N]`` for each channel's ``dt`` (Sec. 2.2)."""
        return bilinear_lower(self.A, self.B, torch.exp(self.log_dt))

    def kernel(self, L: int) -> torch.Tensor:
        """The Krylov kernel ``K[H, L]`` (Sec. 3.2)."""
        A_bar, B_bar = self.discretize()
        return krylov_kernel(A_bar, B_bar, self.C, L)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return self.output_linear(self.dropout(F.gelu(y)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)  # [B, H, L]
        y = fft_conv(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        return self._output(y.transpose(1, 2))

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        """The state ``x[B, H, N]`` and the discretised matrices (computed once, reused by ``step``)."""
        dtype = dtype or self.D.dtype
        with torch.no_grad():
            A_bar, B_bar = self.discretize()
        x = torch.zeros(batch_size, self.d_model, self.d_state, device=device, dtype=dtype)
        return {
            "x": x,
            "A_bar": A_bar.to(device=device, dtype=dtype),
            "B_bar": B_bar.to(device=device, dtype=dtype),
        }

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Recurrent view (Sec. 3.1): ``x_t = A_bar x_{t-1} + B_bar u_t``, ``y_t = C x_t + D u_t``."""
        x = (state["A_bar"] @ state["x"][..., None])[..., 0] + state["B_bar"] * x_t[..., None]
        y = (self.C * x).sum(-1) + self.D * x_t
        return self._output(y), {**state, "x": x}
