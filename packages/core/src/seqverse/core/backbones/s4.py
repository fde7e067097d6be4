"""S4: the structured state space sequence layer with a DPLR (NPLR) state matrix.

Gu, Goel, Re 2022, "Efficiently Modeling Long Sequences with Structured State Spaces".
Per channel ``h`` an SSM ``x' = A x + B u, y = C x + D u`` (Sec. 2.1) with HiPPO-LegS
initialisation (Sec. 2.2), written in its eigenbasis as diagonal plus low rank,
``A = Lambda - P P^*`` (Sec. 3.1-3.3, Thm. 1; :mod:`~seqverse.core.backbones.hippo`), discretised
with the bilinear transform (Sec. 2.3, Eq. 3). The convolution kernel ``K_l = C A_bar^l B_bar``
(Sec. 2.4) is computed as in Algorithm 1:

1. ``C~ = C (I - A_bar^L)`` (here by a dense matrix power, :func:`c_tilde`, so ``C`` is the true
   output vector and forward and step agree for every ``L``);
2. the truncated generating function ``K^(w) = C~ (I - A_bar w)^{-1} B_bar`` at the roots of unity
   ``w_k = exp(-2 pi i k / L)`` via the Woodbury identity (Lemma C.2) and Cauchy sums (Lemma C.3);
3. an inverse FFT gives ``K``, which is applied by FFT convolution, plus ``D u``.

Then GELU, dropout, and a position-wise linear to ``2H`` with a GLU, as in the official S4 block.
Conjugate symmetry: ``Lambda, P, B, C`` store the ``N/2`` modes with ``Im Lambda > 0``; sums run
over the full ``N`` (``[x, conj x]``) so the kernel is real, as ``cauchy_naive`` does officially.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones.base import Mixer
from seqverse.core.backbones.fftconv import fft_conv
from seqverse.core.backbones.hippo import bilinear_dplr, conj_full, nplr_legs
from seqverse.core.backbones.lssl import krylov_kernel_ref


def cauchy_ref(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Reference Cauchy kernel (Lemma C.3): ``out[h, j, f] = sum_n v[h, j, n] / (z[h, f] - w[h, n])``.

    ``v[H, J, N]``, ``z[H, F]``, ``w[H, N]`` complex; materialises the ``[H, N, F]`` Cauchy matrix.
    """
    return v @ (1 / (z[:, None, :] - w[:, :, None]))


class _Cauchy(torch.autograd.Function):
    """:func:`cauchy_ref` in chunks of ``chunk`` nodes ``z``, forward and backward, saving only
    ``v, z, w``: memory O(H N chunk) instead of O(H N F). With ``R = 1/(z - w)`` and PyTorch's
    convention ``grad_x = sum grad_out * conj(d out / d x)``: ``d out/d v = R``,
    ``d out/d w = v R^2 = -d out/d z``. The conjugates sit on the small operands, and the chunk of
    ``R`` lives in one reused ``[H, chunk, N]`` buffer (fresh large tensors cost page faults)."""

    @staticmethod
    def forward(ctx, v, z, w, chunk):
        ctx.save_for_backward(v, z, w)
        ctx.chunk = chunk
        buf = z.new_empty(z.shape[0], min(chunk, z.shape[1]), w.shape[1])
        out = []
        for z_c in z.split(chunk, -1):
            R = torch.sub(z_c[:, :, None], w[:, None, :], out=buf[:, : z_c.shape[1]]).reciprocal_()
            out.append(R @ v.transpose(1, 2))  # [H, F_c, J]
        return torch.cat(out, 1).transpose(1, 2)

    @staticmethod
    def backward(ctx, grad):
        v, z, w = ctx.saved_tensors
        grad_v, grad_w, grad_z = torch.zeros_like(v), torch.zeros_like(w), []
        buf = z.new_empty(z.shape[0], min(ctx.chunk, z.shape[1]), w.shape[1])
        for z_c, g in zip(z.split(ctx.chunk, -1), grad.split(ctx.chunk, -1), strict=True):
            g_conj = g.conj().resolve_conj()  # [H, J, F_c]
            v_T, g_T = v.transpose(1, 2), g_conj.transpose(1, 2)
            R = torch.sub(z_c[:, :, None], w[:, None, :], out=buf[:, : z_c.shape[1]]).reciprocal_()
            grad_v += g_conj @ R  # conj(sum_f g conj(R))
            R2 = R.mul_(R)  # [H, F_c, N]
            grad_z.append(-(g_T * (R2 @ v_T)).sum(-1))  # conj(grad_z)
            grad_w += (v_T * (R2.transpose(1, 2) @ g_T)).sum(-1)  # conj(grad_w)
        return grad_v.conj(), torch.cat(grad_z, -1).conj(), grad_w.conj(), None


def cauchy(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """The Cauchy kernel of :func:`cauchy_ref`, computed in cache-sized chunks of nodes (2^18 entries)."""
    chunk = chunk or max(8, (1 << 18) // (w.shape[0] * w.shape[1]))
    return _Cauchy.apply(v, z, w, chunk)


def dplr_kernel(Lambda, P, B, C_tilde, dt, L: int, chunk: int | None = None) -> torch.Tensor:
    """Algorithm 1 steps 2-4 for ``A = diag(Lambda) - P P^*`` (full ``[H, N]`` vectors), ``dt[H]``.

    At the roots of unity ``w_k = exp(-2 pi i k / L)`` (``k <= L // 2``; ``K`` is real), with the
    bilinear ``A_bar, B_bar`` (Lemma C.3) and the Woodbury identity (Lemma C.2),

        K^(w) = C~ (I - A_bar w)^{-1} B_bar = 2/(1+w) [k00 - k01 (1 + k11)^{-1} k10](z),
        k_ab(z) = sum_n a_n b_n / (z - Lambda_n),   z = 2/dt (1-w)/(1+w),

    for ``(a, b)`` in ``C~ B, C~ P, P^* B, P^* P``; then ``K = irfft(K^)``. ``L`` must be odd
    (no node at ``w = -1``, where ``z`` is infinite); :meth:`S4.kernel` asks for an odd length.
    """
    assert L % 2 == 1, "use an odd number of roots of unity"
    k = torch.arange(L // 2 + 1, device=Lambda.device, dtype=dt.dtype)
    omega = torch.polar(torch.ones_like(k), -2 * math.pi * k / L)  # [F]
    z = (2 / dt[:, None]) * (1 - omega) / (1 + omega)  # [H, F]
    v = torch.stack([C_tilde * B, C_tilde * P, P.conj() * B, P.conj() * P], 1)  # [H, 4, N]
    k00, k01, k10, k11 = cauchy(v, z, Lambda, chunk).unbind(1)
    K_hat = 2 / (1 + omega) * (k00 - k01 * k10 / (1 + k11))
    return torch.fft.irfft(K_hat, n=L)


def c_tilde_ref(C: torch.Tensor, A_bar: torch.Tensor, L: int) -> torch.Tensor:
    """Reference for Algorithm 1 step 1: ``C~ = C (I - A_bar^L)`` with a complex matrix power."""
    return C - (C[:, None, :] @ torch.linalg.matrix_power(A_bar, L))[:, 0]


def c_tilde(C: torch.Tensor, A_bar: torch.Tensor, L: int) -> torch.Tensor:
    """:func:`c_tilde_ref` with the power taken in the real coordinates ``r = [Re x, Im x]`` of the
    conjugate-symmetric state ``x_full = [x, conj x] = U r``, ``U = [[I, iI], [I, -iI]]``.

    With ``A_bar = [[X, Y], [conj Y, conj X]]``,
    ``U^{-1} A_bar U = [[Re(X+Y), -Im(X-Y)], [Im(X+Y), Re(X-Y)]]`` is real, so the ``log L``
    squarings are real matmuls (a quarter of the complex work);
    ``C U = [2 Re C, -2 Im C]`` and ``r U^{-1} = conj_full(r_1 - i r_2) / 2``.
    """
    h = A_bar.shape[-1] // 2
    X, Y, C = A_bar[..., :h, :h], A_bar[..., :h, h:], C[..., :h]
    A_real = torch.cat(
        [torch.cat([(X + Y).real, -(X - Y).imag], -1), torch.cat([(X + Y).imag, (X - Y).real], -1)], -2
    )
    r = (torch.cat([2 * C.real, -2 * C.imag], -1)[:, None, :] @ torch.linalg.matrix_power(A_real, L))[:, 0]
    return conj_full(C) - conj_full(torch.complex(r[..., :h], -r[..., h:])) / 2


def dense_kernel_ref(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Reference: ``K_l = Re(C A_bar^l B_bar)`` by materialising and powering ``A_bar[H, N, N]``."""
    return krylov_kernel_ref(A_bar, B_bar, C, L).real


class S4(Mixer):
    """S4 layer (HiPPO-LegS in DPLR form, bilinear) followed by GELU and a GLU output linear."""

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
        H = d_model
        self.d_model, self.d_state = d_model, d_state
        Lambda, P, B, _ = nplr_legs(d_state)  # validates d_state
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        # Lambda = -exp(log_A_real) + i A_imag keeps Re Lambda < 0 (official "exp" real transform)
        self.log_A_real = nn.Parameter(torch.log(-Lambda.real).float().repeat(H, 1))
        self.A_imag = nn.Parameter(Lambda.imag.float().repeat(H, 1))
        self.P = nn.Parameter(torch.view_as_real(P.to(torch.cfloat)).repeat(H, 1, 1))  # complex, stored real
        self.B = nn.Parameter(torch.view_as_real(B.to(torch.cfloat)).repeat(H, 1, 1))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, d_state // 2, dtype=torch.cfloat)))
        self.D = nn.Parameter(torch.randn(H))
        for p in (self.log_dt, self.log_A_real, self.A_imag, self.P, self.B):
            p._optim = {"weight_decay": 0.0, **({"lr": lr} if lr is not None else {})}  # official recipe
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(H, 2 * H)

    def ssm(self):
        """The continuous parameters as full ``N``-vectors: ``Lambda, P, B, C [H, N]``, ``dt [H]``."""
        Lambda = -torch.exp(self.log_A_real) + 1j * self.A_imag
        P, B, C = (torch.view_as_complex(t) for t in (self.P, self.B, self.C))
        return conj_full(Lambda), conj_full(P), conj_full(B), conj_full(C), torch.exp(self.log_dt)

    def discretize(self):
        """Bilinear ``A_bar[H, N, N]``, ``B_bar[H, N]`` of ``A = Lambda - P P^*`` (Sec. 2.3); ``C[H, N]``."""
        Lambda, P, B, C, dt = self.ssm()
        A_bar, B_bar = bilinear_dplr(Lambda, P, B, dt)
        return A_bar, B_bar, C

    def kernel(self, L: int, chunk: int | None = None) -> torch.Tensor:
        """Algorithm 1: ``K[H, L]``, via ``L' = L`` or ``L + 1`` (odd) roots of unity and
        ``C~ = C (I - A_bar^L')`` (step 1), truncated to ``L``."""
        Lambda, P, B, C, dt = self.ssm()
        A_bar, _ = bilinear_dplr(Lambda, P, B, dt)
        L_odd = L | 1
        C_tilde = c_tilde(C, A_bar, L_odd)  # C (I - A_bar^L')
        return dplr_kernel(Lambda, P, B, C_tilde, dt, L_odd, chunk)[:, :L]

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """GELU, dropout, then Linear(H, 2H) + GLU (the official S4 block's output layer)."""
        return F.glu(self.output_linear(self.dropout(F.gelu(y))), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)  # [B, H, L]
        y = fft_conv(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        return self._output(y.transpose(1, 2))

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        """The full complex state ``x[B, H, N]`` and the discretised matrices, computed once
        (as the official ``setup_step``) and reused by every ``step``."""
        dtype = dtype or self.D.dtype
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        with torch.no_grad():
            A_bar, B_bar, C = self.discretize()
        x = torch.zeros(batch_size, self.d_model, self.d_state, device=device, dtype=cdtype)
        cast = {"device": device, "dtype": cdtype}
        return {"x": x, "A_bar": A_bar.to(**cast), "B_bar": B_bar.to(**cast), "C": C.to(**cast)}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Recurrent mode (Sec. 2.3): ``x_t = A_bar x_{t-1} + B_bar u_t``, ``y_t = C x_t + D u_t``."""
        x = (state["A_bar"] @ state["x"][..., None])[..., 0] + state["B_bar"] * x_t[..., None]
        y = (state["C"] * x).sum(-1).real + self.D * x_t
        return self._output(y), {**state, "x": x}
