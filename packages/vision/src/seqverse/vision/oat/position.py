"""OAT's learned 2-D position code (paper Sec. 3.2; official ``src/model/positionalEncodingLearned.py``).

One table W of K vectors is fitted, before OAT is trained, so that the cosine similarity of entries i
and j follows exp(-(i - j)^2 / (2 sigma^2)) with sigma = 2, plus a loss that pulls every row's norm
to the mean norm ("norm-equalising"). An object's code concatenates the rows for its row index, its
column index and its is-target flag (``calculate3DPositional_learned`` in ``positionalEncoding.py``),
cut to the code width; the table then stays fixed while OAT trains, as in the official model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_targets(n: int, sigma: float = 2.0) -> torch.Tensor:
    """Target cosine similarity of entries i and j: exp(-(i-j)^2 / (2 sigma^2))."""
    idx = torch.arange(n, dtype=torch.float32)
    return torch.exp(-((idx[:, None] - idx[None, :]) ** 2) / (2 * sigma**2))


def position_code_loss(W: torch.Tensor, sigma: float = 2.0, alpha: float = 1.0) -> torch.Tensor:
    """Gaussian-cosine loss + norm-equalising loss, normalised by n(n-1) as the official script."""
    n = W.shape[0]
    Wn = F.normalize(W, p=2, dim=1)
    sim = Wn @ Wn.T
    total = ((sim - gaussian_targets(n, sigma).to(W)) ** 2).sum()
    norms = W.norm(p=2, dim=1)
    total = total + alpha * ((norms - norms.mean()) ** 2).mean()
    return total / (n * (n - 1))


def position_code_loss_reference(W: torch.Tensor, sigma: float = 2.0, alpha: float = 1.0) -> torch.Tensor:
    """The same loss written as the official double loop (the documentation of the math)."""
    n = W.shape[0]
    Wn = F.normalize(W, p=2, dim=1)
    total = W.new_zeros(())
    for i in range(n):
        for j in range(n):
            target = 1.0 if i == j else math.exp(-((i - j) ** 2) / (2 * sigma**2))
            total = total + (torch.dot(Wn[i], Wn[j]) - target) ** 2
    norms = W.norm(p=2, dim=1)
    total = total + alpha * ((norms - norms.mean()) ** 2).mean()
    return total / (n * (n - 1))


def learn_position_table(n: int, dim: int, sigma: float = 2.0, iterations: int = 3000, lr: float = 0.01,
                         seed: int = 0) -> torch.Tensor:
    """Fit the table with Adam from a random start (the official script's choice 1: 10,000 its, lr 0.01)."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.nn.Parameter(torch.randn(n, dim, generator=gen))
    opt = torch.optim.Adam([W], lr=lr)
    for _ in range(iterations):
        opt.zero_grad()
        loss = position_code_loss(W, sigma)
        loss.backward()
        opt.step()
    return W.detach()


def object_position_code(table: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, is_target: torch.Tensor,
                         width: int) -> torch.Tensor:
    """[W[row], W[col], W[is_target]] cut to ``width`` (indices are long tensors of any equal shape)."""
    code = torch.cat([table[rows], table[cols], table[is_target]], dim=-1)
    return code[..., :width]
