"""HiPPO-LegS and its normal-plus-low-rank (NPLR / DPLR) form, shared by S4 and LSSL.

HiPPO-LegS (Gu et al. 2020, "HiPPO: Recurrent Memory with Optimal Polynomial Projections", Sec. 3;
restated in S4, Gu et al. 2022, Eq. (2)) is the state matrix that keeps ``x(t)`` the coefficients of
the input history projected onto scaled Legendre polynomials:

    A_nk = -(2n+1)^{1/2} (2k+1)^{1/2}  if n > k,   -(n+1)  if n = k,   0  if n < k;
    B_n  =  (2n+1)^{1/2}.

S4 Sec. 3.3 / Theorem 1 (Appendix C.1): adding the rank-1 term ``P P^T`` with
``P_n = (n + 1/2)^{1/2}`` makes ``S = A + P P^T = -1/2 I + (skew-symmetric)`` normal, so it is
unitarily diagonalisable, ``S = V Lambda V^*`` with ``Re Lambda = -1/2``, and

    A = V (Lambda - (V^* P)(V^* P)^*) V^*      (diagonal plus low rank, DPLR, in the eigenbasis).

The eigenvalues of the real ``S`` come in conjugate pairs. As in the official code we keep the
``N/2`` with positive imaginary part (``Lambda``, ``P``, ``B`` of length ``N/2``); the full
``N``-dimensional system is recovered with :func:`conj_full` (eigenvectors ``[V, conj V]``).
"""

from __future__ import annotations

import torch


def hippo_legs(N: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The HiPPO-LegS state matrix ``A[N, N]`` and input vector ``B[N]`` (HiPPO Sec. 3, S4 Eq. 2)."""
    q = torch.sqrt(2 * torch.arange(N, dtype=torch.float64) + 1)  # (2n+1)^{1/2}
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1) - torch.diag(
        torch.arange(N, dtype=torch.float64) + 1
    )
    return A.to(dtype), q.clone().to(dtype)


def nplr_legs(N: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """HiPPO-LegS in NPLR form (S4 Sec. 3.3, Thm. 1): ``Lambda, P, B, V``, each for the ``N/2``
    eigenvalues with ``Im > 0`` (complex128), such that with ``V_full = conj_full(V)`` etc.

        hippo_legs(N).A == V_full (diag(Lambda_full) - P_full P_full^*) V_full^*,
        hippo_legs(N).B == V_full B_full.
    """
    if N < 2 or N % 2:
        raise ValueError(f"d_state must be even and >= 2 (eigenvalues come in conjugate pairs), got {N}")
    A, B = hippo_legs(N)
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    S = A + P[:, None] * P[None, :]  # normal: -1/2 I + skew-symmetric
    Lambda_real = torch.diagonal(S).mean()  # = -1/2
    # S_skew v = i mu v  <=>  (-i S_skew) v = mu v with -i S_skew Hermitian
    mu, V = torch.linalg.eigh(-1j * (S - Lambda_real * torch.eye(N, dtype=torch.float64)))
    keep = mu > 0  # one of each conjugate pair; the other eigenvector is conj(v)
    V = V[:, keep]
    Lambda = Lambda_real + 1j * mu[keep]
    P = V.conj().T @ P.to(V.dtype)
    B = V.conj().T @ B.to(V.dtype)
    return Lambda, P, B, V


def conj_full(x: torch.Tensor) -> torch.Tensor:
    """``[x, conj(x)]`` along the last axis: the full conjugate-symmetric ``N``-vector from its half."""
    return torch.cat([x, x.conj()], dim=-1)


def dplr_dense(Lambda: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """The dense ``A = diag(Lambda) - P P^*`` (``[..., N, N]``) from ``Lambda, P [..., N]``."""
    return torch.diag_embed(Lambda) - P[..., :, None] * P[..., None, :].conj()


def bilinear(A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear (Tustin) discretisation (S4 Eq. 3, LSSL Sec. 2.2 "GBT" with alpha = 1/2):
    ``A_bar = (I - dt/2 A)^{-1} (I + dt/2 A)``, ``B_bar = (I - dt/2 A)^{-1} dt B``.

    ``A[..., N, N]``, ``B[..., N]``, ``dt[...]`` broadcast over leading axes. A plain dense solve: the
    reference for :func:`bilinear_dplr` and :func:`bilinear_lower`, which avoid batched LU (slow and
    erratic on few shared CPU cores).
    """
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    half = (dt / 2)[..., None, None].to(A.dtype) * A
    backward = eye - half
    A_bar = torch.linalg.solve(backward, eye + half)
    B_bar = torch.linalg.solve(backward, (dt[..., None].to(B.dtype) * B)[..., None])[..., 0]
    return A_bar, B_bar


def bilinear_dplr(Lambda: torch.Tensor, P: torch.Tensor, B: torch.Tensor, dt: torch.Tensor):
    """:func:`bilinear` for ``A = diag(Lambda) - P P^*`` without a solve (S4 Appendix C.2, as the
    official ``_setup_linear``): ``M = I - dt/2 A = diag(d)^{-1} + (dt/2) P P^*`` has, by Woodbury,

        M^{-1} = diag(d) - (dt/2) (d P)(d P^*)^T / (1 + dt/2 sum_n d_n |P_n|^2),   d = 1 / (1 - dt/2 Lambda),

    and ``A_bar = (I - dt/2 A)^{-1} (I + dt/2 A) = 2 M^{-1} - I``, ``B_bar = M^{-1} dt B``.
    ``Lambda, P, B [..., N]``, ``dt[...]``.
    """
    c = (dt / 2)[..., None].to(Lambda.dtype)
    d = 1 / (1 - c * Lambda)
    dP, dPc = d * P, d * P.conj()
    M_inv = (
        torch.diag_embed(d)
        - (c / (1 + c * (dPc * P).sum(-1, keepdim=True)))[..., None] * dP[..., :, None] * dPc[..., None, :]
    )
    eye = torch.eye(Lambda.shape[-1], dtype=M_inv.dtype, device=M_inv.device)
    B_bar = (M_inv @ (2 * c * B)[..., None])[..., 0]
    return 2 * M_inv - eye, B_bar


def bilinear_lower(A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor):
    """:func:`bilinear` for a lower-triangular ``A`` (HiPPO-LegS) by one triangular inversion:
    ``M = I - dt/2 A``, ``A_bar = 2 M^{-1} - I``, ``B_bar = M^{-1} dt B``."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    M_inv = torch.linalg.solve_triangular(eye - (dt / 2)[..., None, None] * A, eye, upper=False)
    return 2 * M_inv - eye, (M_inv @ (dt[..., None] * B)[..., None])[..., 0]
