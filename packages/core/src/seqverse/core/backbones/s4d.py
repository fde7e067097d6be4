"""S4D: the diagonal state space layer.

Gu, Gupta, Goel, Re 2022, "On the Parameterization and Initialization of Diagonal State Space
Models". Per channel ``h`` a diagonal complex SSM ``x' = A x + B u, y = C x + D u`` with ``N/2``
modes kept of each conjugate pair (Sec. 3.1, the output is ``2 Re``); S4D-Lin initialisation
``A_n = -1/2 + i pi n`` (Sec. 4.1); ``log dt`` learnable and log-uniform in ``[1e-3, 1e-1]``;
zero-order-hold discretisation ``A_bar = exp(dt A)``, ``B_bar = (exp(dt A) - 1)/A B`` (Sec. 3.2);
the convolution kernel is a Vandermonde product (Sec. 3.2, Eq. 5, ``B`` folded into ``C`` as in the
paper's Listing 1):

    K_l = 2 Re( sum_n C_n (exp(dt A_n) - 1) / A_n * exp(dt A_n l) ),   l = 0..L-1,

applied by FFT convolution, plus the skip ``D u``; then GELU, dropout and a position-wise linear
to ``2H`` followed by a GLU, as in the official S4 block (``S4D`` of ``s4d.py`` in state-spaces/s4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones.base import Mixer
from seqverse.core.backbones.fftconv import fft_conv


def vandermonde_kernel_ref(C: torch.Tensor, dtA: torch.Tensor, L: int) -> torch.Tensor:
    """Reference (the paper's Listing 1): ``K[h, l] = 2 Re sum_n C[h, n] exp(dtA[h, n] l)``.

    Materialises ``exp(dtA l)`` as ``[H, N, L]``."""
    l = torch.arange(L, device=dtA.device, dtype=dtA.real.dtype)
    return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(dtA[..., None] * l)).real


def vandermonde_kernel(C: torch.Tensor, dtA: torch.Tensor, L: int) -> torch.Tensor:
    """The same kernel as two small Vandermonde factors and one real matmul: writing ``l = a m + b``
    (``m ~ sqrt(L)``), ``exp(dtA l) = exp(dtA m a) exp(dtA b)``, so per channel

        K[a m + b] = 2 Re sum_n (C_n exp(dtA_n m a)) exp(dtA_n b) = 2 (Re X @ Re Y - Im X @ Im Y).

    Memory O(H N sqrt(L)) instead of O(H N L), and the work is one BLAS matmul.
    """
    m = 1 << math.ceil(math.log2(max(1, L)) / 2)  # power of two >= sqrt(L)
    a_count = -(-L // m)
    real = dtA.real.dtype
    X = C[:, None, :] * torch.exp(
        dtA[:, None, :] * (m * torch.arange(a_count, device=dtA.device, dtype=real))[:, None]
    )
    Y = torch.exp(dtA[:, :, None] * torch.arange(m, device=dtA.device, dtype=real))  # [H, N, m]
    K = 2 * (torch.cat([X.real, -X.imag], -1) @ torch.cat([Y.real, Y.imag], -2))  # [H, a_count, m]
    return K.reshape(K.shape[0], -1)[:, :L]


class S4D(Mixer):
    """S4D layer (S4D-Lin, ZOH) followed by GELU and a GLU output linear; ``[B, L, H] -> [B, L, H]``."""

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
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be even and >= 2 (N/2 conjugate pairs), got {d_state}")
        H, N2 = d_model, d_state // 2
        self.d_model, self.d_state = d_model, d_state
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        # S4D-Lin: A_n = -1/2 + i pi n, the real part kept negative as -exp(log_A_real)
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N2)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(N2, dtype=torch.float32).repeat(H, 1))
        self.C = nn.Parameter(
            torch.view_as_real(torch.randn(H, N2, dtype=torch.cfloat))
        )  # complex, stored real
        self.D = nn.Parameter(torch.randn(H))
        for p in (self.log_dt, self.log_A_real, self.A_imag):
            p._optim = {"weight_decay": 0.0, **({"lr": lr} if lr is not None else {})}  # official recipe
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(H, 2 * H)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ZOH (Sec. 3.2): ``dtA [H, N/2]``, ``A_bar = exp(dtA)``, ``B_bar = (exp(dtA) - 1)/A`` (B = 1)."""
        dt = torch.exp(self.log_dt)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag
        dtA = A * dt[:, None]
        return dtA, torch.exp(dtA), (torch.exp(dtA) - 1.0) / A

    def kernel(self, L: int) -> torch.Tensor:
        """The SSM convolution kernel ``K[H, L]`` (Sec. 3.2)."""
        dtA, _, B_bar = self.discretize()
        return vandermonde_kernel(torch.view_as_complex(self.C) * B_bar, dtA, L)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """GELU, dropout, then Linear(H, 2H) + GLU (the official S4 block's output layer)."""
        return F.glu(self.output_linear(self.dropout(F.gelu(y))), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)  # [B, H, L]
        y = fft_conv(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        return self._output(y.transpose(1, 2))

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        dtype = dtype or self.D.dtype
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.d_model, self.d_state // 2, device=device, dtype=cdtype)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the diagonal recurrence ``x_t = A_bar x_{t-1} + B_bar u_t``,
        ``y_t = 2 Re(C x_t) + D u_t`` (same ZOH discretisation as the kernel)."""
        _, A_bar, B_bar = self.discretize()
        state = A_bar * state + B_bar * x_t[..., None]
        y = 2 * (torch.view_as_complex(self.C) * state).sum(-1).real + self.D * x_t
        return self._output(y), state
