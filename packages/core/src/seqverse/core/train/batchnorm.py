"""Batch normalisation over the global batch of every data-parallel rank, on any backend.

``nn.SyncBatchNorm`` runs only on CUDA; on CPU (gloo) each rank would otherwise normalise its own
share of the batch, so N processes would train a different model than one. This module computes the
batch statistics from per-rank sums exchanged with ``torch.distributed.nn.functional.all_reduce``
(PyTorch's differentiable collective: its backward all-reduces the gradient), so forward, backward
and running statistics equal ``nn.BatchNorm`` applied to the whole global batch.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A BatchNorm (1d/2d/3d: channels on dim 1) whose training-mode statistics are those of the
    union of every rank's batch in ``group``; eval mode uses the running statistics as usual. Same
    parameters, buffers and state-dict keys as the BatchNorm it replaces."""

    def __init__(self, *args, group=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training or not self.track_running_stats) or not dist.is_initialized():
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        local = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        # two passes (mean, then squared deviations from the global mean), as accurate as BatchNorm's
        group = self.group if self.group is not None else dist.group.WORLD
        with warnings.catch_warnings():  # torch 2.14 points to a private module instead; this op is kept
            warnings.simplefilter("ignore", FutureWarning)
            sums = all_reduce(torch.cat([x.sum(dims), local]), group=group)
        n = sums[-1].detach()
        mean = sums[:-1] / n
        centred = x - mean.reshape(shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            var = all_reduce(centred.pow(2).sum(dims), group=group) / n
        y = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (n / max(float(n) - 1, 1.0))
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y


def convert_batchnorm(model: nn.Module, group=None) -> nn.Module:
    """Replace every BatchNorm of ``model`` (in place, sharing its parameters and buffers) with a
    :class:`GlobalBatchNorm` over ``group``; returns ``model``."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats, group=group)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            object.__setattr__(new, "plain", child)  # not a submodule: restore_batchnorm puts it back
            setattr(model, name, new)
        else:
            convert_batchnorm(child, group)
    return model


def restore_batchnorm(model: nn.Module) -> nn.Module:
    """Undo :func:`convert_batchnorm`: the original BatchNorms (their parameters and buffers were
    shared and updated in place, so they hold the trained values), usable by one process alone."""
    for name, child in list(model.named_children()):
        if isinstance(child, GlobalBatchNorm):
            child.plain.train(child.training)
            setattr(model, name, child.plain)
        else:
            restore_batchnorm(child)
    return model
