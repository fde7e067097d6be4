"""Mamba: the selective state space block (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling
with Selective State Spaces").

The selective SSM (Sec. 3.2, Algorithm 2) makes the SSM parameters functions of the input::

    Delta_t = softplus(dt_proj(s_Delta(x_t))),  B_t = s_B(x_t),  C_t = s_C(x_t)
    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t        (Eq. 2 with the ZOH of Eq. 4; dB ~ Delta B)
    y_t = C_t h_t + D x_t

and the Mamba block (Sec. 3.4, Figure 3) wraps it: in_proj -> (x, z); causal depthwise conv1d +
SiLU on x; the selective SSM; gate ``y * SiLU(z)``; out_proj. Parameter names and initialisation
follow the official ``mamba_simple.Mamba`` (state-spaces/mamba), so its state dicts load.

Three ways to run the same recurrence:

- :func:`selective_scan_ref` -- the plain reference, a Python loop over time (official
  ``selective_scan_ref``); the documentation of the math.
- :func:`selective_scan` -- the fast CPU path: a chunked scan with a hand-written backward that,
  like the fused CUDA kernel (Sec. 3.3.2), keeps no ``[B, L, D, N]`` tensor between forward and
  backward (it recomputes the states), so memory is bounded by the block size, not by L.
- :meth:`Mamba.step` -- the recurrent mode of Eq. 2, O(1) time and memory per token.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones.base import Mixer

# ----------------------------------------------------------------------------------------------
# The selective scan: reference (loop over time) and fast (chunked, custom backward)
# ----------------------------------------------------------------------------------------------


def _scan_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan runs in float32 for half types (as the official kernel does), else in the input dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _scan_inputs(u, delta, A, B, C, delta_bias, delta_softplus):
    """Cast to the scan's dtype and apply the Delta bias and softplus, as both scans do first."""
    dtype = _scan_dtype(u.dtype)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(dtype)
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta, A, B, C


def _scan_output(y, u, D, z, dtype_in):
    """``y + D u``, gated by ``SiLU(z)``, back in the input dtype (both scans end this way)."""
    out = y if D is None else y + u * D.to(u.dtype)[:, None]
    if z is not None:
        out = out * F.silu(z.to(u.dtype))
    return out.to(dtype_in)


def selective_scan_ref(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """The selective SSM of Algorithm 2 / Eq. 2, one time step at a time (official ``selective_scan_ref``).

    u, delta: ``[b, d, L]``; A: ``[d, n]`` (real, negative); B, C: ``[b, n, L]`` (input-dependent);
    D: ``[d]``; z: ``[b, d, L]`` (the gate); delta_bias: ``[d]``.
    Returns out ``[b, d, L]`` (and the last state ``[b, d, n]`` if ``return_last_state``).
    """
    dtype_in = u.dtype
    u, delta, A, B, C = _scan_inputs(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # ZOH: A_bar = exp(Delta A)
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # simplified: B_bar x = Delta B x
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]  # h_t = A_bar_t h_{t-1} + B_bar_t x_t
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))  # y_t = C_t h_t
    y = torch.stack(ys, dim=2)
    out = _scan_output(y, u, D, z, dtype_in)
    return (out, x) if return_last_state else out


def _chunked_scan_(a: torch.Tensor, x: torch.Tensor, h0, chunk: int, reverse: bool = False) -> torch.Tensor:
    """The linear recurrence ``x[t] <- a[t] * x[t -/+ 1] + x[t]`` along dim 1 of ``[b, l, ...]``, in place.

    Forward: ``h_t = a_t h_{t-1} + x_t`` with ``h_{-1} = h0``; reverse: ``g_t = a_t g_{t+1} + x_t``
    with ``g_l = h0`` (None means zero). ``l`` must divide by ``chunk``. Two short loops:

    1. inside every chunk at once (a loop over the ``chunk`` positions, vectorised over chunks):
       the local scan from a zero state, and the running product of ``a`` (overwrites ``a``);
    2. over chunks: add the running product times the state entering the chunk, read off the
       state leaving it.

    Only products of decays ``0 < a <= 1`` are formed, so nothing can overflow. Returns the final
    state (a view into ``x``).
    """
    b, l = x.shape[:2]
    a = a.unflatten(1, (l // chunk, chunk))
    x = x.unflatten(1, (l // chunk, chunk))
    steps = (
        [(t, t + 1) for t in range(chunk - 2, -1, -1)] if reverse else [(t, t - 1) for t in range(1, chunk)]
    )
    for t, prev in steps:
        x[:, :, t].addcmul_(a[:, :, t], x[:, :, prev])
        a[:, :, t].mul_(a[:, :, prev])
    h = h0
    for c in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        if h is not None:
            x[:, c].addcmul_(a[:, c], h.unsqueeze(1))
        h = x[:, c, 0] if reverse else x[:, c, -1]
    return h


def _block_states(u, delta, A_t, B, h0, chunk, keep_dA=False):
    """States ``h[b, l, n, d]`` of one block (and ``A_bar = exp(Delta A)``, Eq. 4, if ``keep_dA``).

    ``A_t`` is ``A`` transposed, ``[n, d]``: the state is stored ``[n, d]`` so that d, the long axis,
    is contiguous (the products and reductions over n then vectorise).
    """
    dA = torch.mul(delta.unsqueeze(2), A_t * math.log2(math.e)).exp2_()  # exp2 is ~2x faster than exp
    h = B.unsqueeze(-1) * (delta * u).unsqueeze(2)  # B_bar x = Delta B x
    _chunked_scan_(dA.clone() if keep_dA else dA, h, h0, chunk)
    return (h, dA) if keep_dA else h


class _SelectiveScanFn(torch.autograd.Function):
    """``y_t = C_t h_t``, ``h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t`` on time-major inputs.

    The sequence is cut into blocks (whole chunks; the last may be shorter) processed in turn,
    carrying the state; forward saves only the inputs and the block-entry states. Backward
    recomputes a block's states and runs the adjoint recurrence backwards in time,
    ``lambda_t = C_t dy_t + A_bar_{t+1} lambda_{t+1}``, from which ``dC_t = sum_d dy_t h_t``,
    ``dB_t = sum_d lambda_t Delta_t u_t``, ``du_t = Delta_t sum_n lambda_t B_t``, and through
    ``q_t = lambda_t A_bar_t h_{t-1}`` the terms ``dDelta_t += sum_n q_t A``, ``dA = sum_t q_t Delta_t``
    (as the fused kernel recomputes its states, Sec. 3.3.2).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk: int, block: int):
        ctx.set_materialize_grads(False)
        A_t = A.t().contiguous()
        ys, entries, h = [], [], None
        with _scan_threads(u):
            for s in range(0, u.shape[1], block):
                entries.append(h)
                part = slice(s, s + block)
                hs = _block_states(u[:, part], delta[:, part], A_t, B[:, part], h, chunk)
                ys.append((C[:, part].unsqueeze(2) @ hs).squeeze(2))  # y_t = C_t h_t
                h = hs[:, -1].clone()
        ctx.chunk, ctx.block = chunk, block
        ctx.save_for_backward(u, delta, A, B, C, *entries[1:])
        return torch.cat(ys, 1), h.transpose(1, 2)

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, *entries = ctx.saved_tensors
        dlast = None if dlast is None else dlast.transpose(1, 2)
        with _scan_threads(u):
            grads = _scan_backward(u, delta, A, B, C, [None, *entries], dy, dlast, ctx.chunk, ctx.block)
        return *grads, None, None


def _scan_backward(u, delta, A, B, C, entries, dy, dlast, chunk, block):
    """Gradients of :class:`_SelectiveScanFn` wrt (u, delta, A, B, C), block by block, last block first."""
    A_t = A.t().contiguous()
    du, ddelta = torch.zeros_like(u), torch.zeros_like(delta)
    dB, dC, dA_t = torch.zeros_like(B), torch.zeros_like(C), torch.zeros_like(A_t)
    if dy is None:
        dy = torch.zeros_like(u)
    g = dlast  # dL/dh_t at the block's last position from everything after it (A_bar_{t+1} lambda_{t+1})
    for i in reversed(range(len(entries))):
        part = slice(i * block, (i + 1) * block)
        u_, delta_, B_, C_, dy_, h0 = (
            u[:, part],
            delta[:, part],
            B[:, part],
            C[:, part],
            dy[:, part],
            entries[i],
        )
        h, dA_bar = _block_states(u_, delta_, A_t, B_, h0, chunk, keep_dA=True)
        # adjoint: lambda_t = C_t dy_t + A_bar_{t+1} lambda_{t+1}
        lam = C_.unsqueeze(-1) * dy_.unsqueeze(2)
        next_dA = torch.empty_like(dA_bar)
        next_dA[:, :-1] = dA_bar[:, 1:]
        next_dA[:, -1] = 1  # the A_bar past the block's end is already inside g
        _chunked_scan_(next_dA, lam, g, chunk, reverse=True)
        dC[:, part] = (h * dy_.unsqueeze(2)).sum(-1)
        dB[:, part] = (lam * (delta_ * u_).unsqueeze(2)).sum(-1)
        lam_B = (B_.unsqueeze(2) @ lam).squeeze(2)
        du[:, part] = delta_ * lam_B
        ddelta[:, part] = u_ * lam_B
        # through A_bar_t = exp(Delta_t A): q_t = lambda_t A_bar_t h_{t-1}
        q = torch.mul(lam, dA_bar, out=next_dA)
        q[:, 1:] *= h[:, :-1]
        if h0 is None:
            q[:, 0] = 0
        else:
            q[:, 0] *= h0
        g = lam[:, 0] * dA_bar[:, 0]
        ddelta[:, part] += (q * A_t).sum(2)
        dA_t += q.mul_(delta_.unsqueeze(2)).sum((0, 1))
    return du, ddelta, dA_t.t(), dB, dC


#: CPU threads for the scan (None: torch's setting). The scan issues many small ops, and an OpenMP
#: parallel region around each costs more than it saves -- milliseconds each when other processes
#: share the cores -- so by default it runs on one thread; the large matmuls around it do not.
SCAN_THREADS: int | None = 1


@contextlib.contextmanager
def _scan_threads(u: torch.Tensor):
    threads = torch.get_num_threads()
    change = u.device.type == "cpu" and SCAN_THREADS is not None and SCAN_THREADS != threads
    if change:
        torch.set_num_threads(SCAN_THREADS)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(threads)


def scan_sizes(batch, length, d_inner, d_state, chunk_size=None, block_size=None, device_type="cpu"):
    """Chunk and block lengths. A block holds about 2^19 state entries on CPU (2 MB in float32, so it
    stays in cache) and 2^26 elsewhere (fewer, larger kernels); chunks are about sqrt(block) long,
    so both Python loops stay short."""
    if block_size is None:
        budget = 1 << (19 if device_type == "cpu" else 26)
        block_size = max(1, budget // max(1, batch * d_inner * d_state))
    block_size = min(block_size, length)
    if chunk_size is None:
        chunk_size = 1 << max(0, round(math.log2(math.sqrt(block_size))))
    chunk_size = min(chunk_size, length)
    block_size = max(chunk_size, block_size // chunk_size * chunk_size)
    return chunk_size, block_size


def selective_scan(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    chunk_size: int | None = None,
    block_size: int | None = None,
):
    """:func:`selective_scan_ref` computed fast: chunked scan, blocks of bounded memory, custom backward.

    Same arguments and result as :func:`selective_scan_ref`. ``chunk_size`` (the length of the
    in-chunk loop) and ``block_size`` (positions held in memory at once) only change speed and
    memory (see :func:`scan_sizes` for the defaults).
    """
    dtype_in = u.dtype
    u, delta, A, B, C = _scan_inputs(u, delta, A, B, C, delta_bias, delta_softplus)
    (b, d, length), n = u.shape, A.shape[1]
    chunk, block = scan_sizes(b, length, d, n, chunk_size, block_size, u.device.type)
    # time-major [b, L, d] / [b, L, n]; pad L to whole chunks with Delta = 0 (A_bar = 1, B_bar x = 0)
    pad = -length % chunk
    u_t, delta_t, B_t, C_t = (F.pad(t.transpose(1, 2), (0, 0, 0, pad)).contiguous() for t in (u, delta, B, C))
    y, last_state = _SelectiveScanFn.apply(u_t, delta_t, A, B_t, C_t, chunk, block)
    y = y[:, :length].transpose(1, 2)
    out = _scan_output(y, u, D, z, dtype_in)
    return (out, last_state) if return_last_state else out


# ----------------------------------------------------------------------------------------------
# The Mamba block (Sec. 3.4, Figure 3)
# ----------------------------------------------------------------------------------------------


class Mamba(Mixer):
    """The Mamba block: in_proj -> (x, z); x -> causal conv1d -> SiLU -> selective SSM; * SiLU(z); out_proj.

    Options and initialisation as the official ``mamba_simple.Mamba``: ``d_inner = expand * d_model``;
    ``dt_rank = ceil(d_model / 16)``; ``Delta``'s bias is the inverse softplus of a log-uniform sample
    in ``[dt_min, dt_max]`` (floored at ``dt_init_floor``) so ``softplus`` starts ``Delta`` in that
    range (Sec. 3.6, Appendix E); ``A = -exp(A_log)`` with the S4D-Real init ``A_n = -(n + 1)``.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        chunk_size: int | None = None,
    ):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.chunk_size = chunk_size
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")

        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            kernel_size=d_conv,
            groups=self.d_inner,
            padding=d_conv - 1,
            bias=conv_bias,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)  # s_Delta, s_B, s_C
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)  # s_Delta: low rank -> d_inner

        dt_init_std = self.dt_rank**-0.5 * dt_scale
        with torch.no_grad():
            if dt_init == "constant":
                nn.init.constant_(self.dt_proj.weight, dt_init_std)
            else:
                nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
            dt = torch.exp(
                torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            )
            dt = dt.clamp(min=dt_init_floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # S4D-Real
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        for p in (self.A_log, self.D):  # the official block exempts these from weight decay
            p._optim = {"weight_decay": 0.0}
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def ssm_parameters(self, x: torch.Tensor):
        """Input-dependent ``(Delta before softplus, B, C)`` of ``x[..., d_inner]`` (Algorithm 2, l. 2-4)."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.linear(dt, self.dt_proj.weight), B, C  # dt_proj's bias is added inside the scan

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        length = hidden_states.shape[1]
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # [b, L, d_inner] each
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :length])  # causal: keep the first L outputs
        dt, B, C = self.ssm_parameters(x.transpose(1, 2))
        y = selective_scan(
            x,
            dt.transpose(1, 2),
            -torch.exp(self.A_log),
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D,
            z=z.transpose(1, 2),
            delta_bias=self.dt_proj.bias,
            delta_softplus=True,
            chunk_size=self.chunk_size,
        )
        return self.out_proj(y.transpose(1, 2))

    def init_state(self, batch_size: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(conv window ``[B, d_inner, d_conv]``, SSM state ``[B, d_inner, d_state]``), both zero."""
        conv_state = torch.zeros(batch_size, self.d_inner, self.d_conv, device=device, dtype=dtype)
        ssm_state = torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=dtype)
        return conv_state, ssm_state

    def step(self, x_t: torch.Tensor, state) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One token in O(1): shift the conv window, then one step of the recurrence (Eq. 2, Algorithm 2)."""
        conv_state, ssm_state = state
        x, z = self.in_proj(x_t).chunk(2, dim=-1)  # [b, d_inner]
        conv_state = torch.cat([conv_state[:, :, 1:], x.unsqueeze(-1)], dim=-1)
        x = (conv_state * self.conv1d.weight.squeeze(1)).sum(-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        dt, B, C = self.ssm_parameters(x)
        dt = F.softplus(dt + self.dt_proj.bias)
        A = -torch.exp(self.A_log)
        dA = torch.exp(torch.einsum("bd,dn->bdn", dt, A))
        ssm_state = ssm_state * dA + (dt * x).unsqueeze(-1) * B.unsqueeze(1)
        y = torch.einsum("bdn,bn->bd", ssm_state, C) + self.D * x
        y = y * F.silu(z)
        return self.out_proj(y), (conv_state, ssm_state)


__all__ = ["Mamba", "scan_sizes", "selective_scan", "selective_scan_ref"]
