"""Sequence parallelism for the Hyena operator, exact against one device.

Each of the P ranks of an SP group holds one contiguous block of ``n = L / P`` positions. The
operator's position-wise parts (projections, gates, the skip term ``D u``) need nothing from the
other ranks; its two convolutions are causal, so the output block of rank r depends on inputs of
blocks 0..r:

- the short depthwise filter (kernel K) needs the last ``K - 1`` projected inputs of rank r - 1
  (a halo, gathered from every rank's tail);
- each implicit long convolution ``h * v`` needs every earlier input block: the blocks of ``v`` are
  all-gathered and rank r computes the FFT convolution over the whole length with the filter of
  the global length ``L`` (every rank evaluates the same filter at global positions 0..L-1), then
  keeps its own block.

:func:`gather_sequence` is the one collective, differentiable: forward all-gather along the
sequence, backward all-reduce of the full gradient, each rank keeping its block (every rank's
output block contributes to the gradient of every earlier input block). The reference is the
plain :class:`~seqverse.core.backbones.hyena.HyenaOperator` on the whole sequence; a test holds
output and gradients equal.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from seqverse.core.backbones.fftconv import fft_conv
from seqverse.core.backbones.hyena import HyenaOperator
from seqverse.core.parallel.comm import rank_and_size


class _GatherSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        ctx.rank, size = rank_and_size(group)
        ctx.n = x.shape[-1]
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[..., ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n], None


def gather_sequence(x: torch.Tensor, group) -> torch.Tensor:
    """The full ``[..., L]`` tensor from every rank's contiguous ``[..., L / P]`` block (differentiable)."""
    return _GatherSequence.apply(x, group)


def _sp_forward(op: HyenaOperator, u: torch.Tensor, group) -> torch.Tensor:
    """The operator's forward on this rank's block ``u[B, n, D]`` (Algorithm 3 across ranks)."""
    rank, size = rank_and_size(group)
    n = u.shape[1]
    L = n * size
    z = op.in_proj(u).transpose(1, 2)  # [B, (N+1) D, n]
    K = op.short_filter.kernel_size[0]
    if K > 1:  # halo: the previous rank's last K - 1 projected inputs (zeros before position 0)
        if n < K - 1:
            raise ValueError(f"sequence-parallel Hyena needs at least {K - 1} positions per rank, got {n}")
        tails = gather_sequence(z[..., n - (K - 1) :], group)  # [B, C, (K - 1) P]
        # zeros before rank 0; sliced from one tensor on every rank, so that every rank's backward
        # runs the gather's all-reduce (a rank skipping it would deadlock the others)
        tails = torch.cat([torch.zeros_like(tails[..., : K - 1]), tails], dim=-1)
        zz = torch.cat([tails[..., rank * (K - 1) : (rank + 1) * (K - 1)], z], dim=-1)
    else:
        zz = z
    w, b = op.short_filter.weight, op.short_filter.bias
    uc = b[:, None] + w[:, 0, K - 1, None] * zz[..., K - 1 :]
    for j in range(K - 1):  # tap j sees the input K - 1 - j steps back
        uc = uc + w[:, 0, j, None] * zz[..., j : j + n]
    *x, v = uc.split(op.d_model, dim=1)
    k = op.filters(L)  # the filter at global positions 0..L-1, the same on every rank
    bias = op.filter_fn.bias.view(op.order - 1, op.d_model)
    for o, x_i in enumerate(reversed(x[1:])):
        v = op.dropout(v * x_i)
        v_full = gather_sequence(v, group)
        v = fft_conv(v_full, k[o])[..., rank * n : (rank + 1) * n] + bias[o][:, None] * v
    return op.out_proj((v * x[0]).transpose(1, 2))


def parallelize_hyena(module: nn.Module, group) -> nn.Module:
    """Make every :class:`HyenaOperator` in ``module`` (in place) take and return its rank's
    contiguous block of the sequence over ``group``; returns ``module``. Parameters are unchanged
    (checkpoints stay interchangeable). ``with sequence_parallel_off(module):`` runs whole sequences."""
    for op in module.modules():
        if isinstance(op, HyenaOperator):
            op.sp_group, op.sp_off = group, False  # group None: the default process group
            op.forward = _make_forward(op)
    return module


def _make_forward(op: HyenaOperator):
    plain = HyenaOperator.forward.__get__(op)

    def forward(u: torch.Tensor) -> torch.Tensor:
        if op.sp_off:
            return plain(u)
        return _sp_forward(op, u, op.sp_group)

    return forward


class sequence_parallel_off:  # noqa: N801 - used as a context manager
    """``with sequence_parallel_off(model):`` the Hyena operators see whole sequences (e.g. evaluation)."""

    def __init__(self, module: nn.Module):
        self.ops = [m for m in module.modules() if isinstance(m, HyenaOperator)]

    def __enter__(self):
        for op in self.ops:
            op.sp_off = True
        return self

    def __exit__(self, *exc):
        for op in self.ops:
            op.sp_off = False
