"""LASP-2 (Sun et al. 2025, "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its
Hybrid", Sec. 3): sequence parallelism for linear attention with one all-gather of memory states.

Linear attention ``O = ((Q K^T) * M) V`` (no feature map, no normalisation), ``M[t, s] = lambda^(t-s)``
for ``s <= t`` (``lambda = 1`` unless a per-head decay is given) and 0 otherwise. Rank r holds the
contiguous chunk r of n = L/P positions and computes (Algorithm 1 of the paper, forward):

1. its memory state ``M_r = K_r^T (Gamma V_r)``, ``Gamma_s = lambda^(n-1-s)`` (decayed to the chunk's end);
2. one **all-gather** of the ``[d, d]`` states of all ranks;
3. the prefix ``S_r = sum_{j<r} lambda^(n (r-1-j)) M_j`` (the state just before chunk r);
4. ``O_r = ((Q_r K_r^T) * M_local) V_r + (Lambda Q_r) S_r`` with ``Lambda_t = lambda^(t+1)``.

Backward (Algorithm 2): ``dS_r = (Lambda Q_r)^T dO_r``, one **all-gather** of the ``dS``, the suffix
``dM_r = sum_{i>r} lambda^(n (i-1-r)) dS_i``, then ``dK_r += (Gamma V_r) dM_r^T``, ``dV_r += Gamma K_r dM_r``.
Without a causal mask ``O_r = Q_r sum_j M_j`` and the states simply sum. Bytes sent per rank are
``(P-1) B H d^2`` elements per pass: independent of the sequence length.
"""

from __future__ import annotations

import torch

from seqverse.core.parallel import comm, layout


def linear_attention_ref(q, k, v, causal: bool = True, decay: torch.Tensor | None = None) -> torch.Tensor:
    """The math on full ``[B, L, H, d]`` tensors: ``((Q K^T) * M) V`` per head."""
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    mask = decay_mask(q.shape[2], _log_decay(decay, q), causal)
    return (((q @ k.transpose(-1, -2)) * mask) @ v).transpose(1, 2)


def _log_decay(decay, q) -> torch.Tensor:
    """``log lambda`` as ``[H, 1, 1]`` (zeros without decay)."""
    if decay is None:
        return torch.zeros(1, 1, 1, dtype=q.dtype, device=q.device)
    return decay.to(dtype=q.dtype, device=q.device).log()[:, None, None]


def decay_mask(n: int, log_decay: torch.Tensor, causal: bool) -> torch.Tensor:
    """``M[t, s] = lambda^(t-s)`` for ``s <= t``, else 0; all ones when not causal. ``[H|1, n, n]``."""
    t = torch.arange(n, device=log_decay.device)
    diff = (t[:, None] - t[None, :]).to(log_decay.dtype)
    if not causal:
        return torch.ones_like(diff)[None]
    return torch.exp(diff.clamp(min=0) * log_decay) * (diff >= 0)


def _powers(exponents: torch.Tensor, log_decay: torch.Tensor) -> torch.Tensor:
    """``lambda^e`` as ``[H|1, len(e), 1]``, ready to scale rows of ``[B, H, n, d]`` tensors."""
    return torch.exp(exponents.to(log_decay.dtype)[:, None] * log_decay)


def prefix_state(states: torch.Tensor, rank: int, n: int, log_decay: torch.Tensor) -> torch.Tensor:
    """``S_r = sum_{j<r} lambda^(n (r-1-j)) M_j``: the state entering chunk ``rank`` (``[B, H, d, dv]``)."""
    return sum(
        (torch.exp(n * (rank - 1 - j) * log_decay) * states[j] for j in range(rank)),
        torch.zeros_like(states[0]),
    )


class LASP2(torch.autograd.Function):
    """Local ``[B, H, n, d]`` tensors in, local output out; explicit backward (see module doc)."""

    @staticmethod
    def forward(ctx, q, k, v, log_decay, causal: bool, group):
        rank, _ = comm.rank_and_size(group)
        n = q.shape[2]
        t = torch.arange(n, device=q.device)
        if causal:
            gamma = _powers(n - 1 - t, log_decay)
            states = comm.all_gather(k.transpose(-1, -2) @ (gamma * v), group, "lasp2", "forward")
            out = ((q @ k.transpose(-1, -2)) * decay_mask(n, log_decay, True)) @ v
            out = out + (_powers(t + 1, log_decay) * q) @ prefix_state(states, rank, n, log_decay)
        else:
            states = comm.all_gather(k.transpose(-1, -2) @ v, group, "lasp2", "forward")
            out = q @ states.sum(0)
        ctx.save_for_backward(q, k, v, log_decay, states)
        ctx.causal, ctx.group = causal, group
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, log_decay, states = ctx.saved_tensors
        rank, size = comm.rank_and_size(ctx.group)
        n = q.shape[2]
        if not ctx.causal:
            d_state = comm.all_gather(q.transpose(-1, -2) @ dout, ctx.group, "lasp2", "backward").sum(0)
            dq = dout @ states.sum(0).transpose(-1, -2)
            return dq, v @ d_state.transpose(-1, -2), k @ d_state, None, None, None
        t = torch.arange(n, device=q.device)
        mask = decay_mask(n, log_decay, True)
        gamma, lam = _powers(n - 1 - t, log_decay), _powers(t + 1, log_decay)
        # intra-chunk: A = (Q K^T) * M, O = A V
        scores = (q @ k.transpose(-1, -2)) * mask
        d_scores = (dout @ v.transpose(-1, -2)) * mask
        dq, dk, dv = d_scores @ k, d_scores.transpose(-1, -2) @ q, scores.transpose(-1, -2) @ dout
        # inter-chunk: O += (Lambda Q) S_r
        dq = dq + lam * (dout @ prefix_state(states, rank, n, log_decay).transpose(-1, -2))
        d_prefixes = comm.all_gather((lam * q).transpose(-1, -2) @ dout, ctx.group, "lasp2", "backward")
        # dM_r = sum_{i > r} lambda^(n (i-1-r)) dS_i: the suffix combination of the gathered gradients
        d_state = sum(
            (torch.exp(n * (i - 1 - rank) * log_decay) * d_prefixes[i] for i in range(rank + 1, size)),
            torch.zeros_like(states[0]),
        )
        dk = dk + (gamma * v) @ d_state.transpose(-1, -2)
        dv = dv + gamma * (k @ d_state)
        return dq, dk, dv, None, None, None


def linear_attention(
    q, k, v, causal: bool = True, group=None, decay: torch.Tensor | None = None
) -> torch.Tensor:
    """LASP-2 on this rank's contiguous slices ``[B, L/P, H, d]``; returns the local output.

    ``decay``: optional per-head ``lambda`` in (0, 1], shape ``[H]`` (a constant; no gradient).
    """
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"linear_attention: expected q, k [B, L/P, H, d] and v [B, L/P, H, dv], got "
            f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}"
        )
    if decay is not None:
        if not causal:
            raise ValueError("linear_attention: a decay needs causal=True")
        if decay.shape != (q.shape[2],) or not bool(((decay > 0) & (decay <= 1)).all()):
            raise ValueError(f"linear_attention: decay must be [H={q.shape[2]}] values in (0, 1]")
    log_decay = _log_decay(decay, q)
    out = LASP2.apply(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), log_decay, causal, group)
    return out.transpose(1, 2)


def simulate(q, k, v, causal: bool, size: int, decay: torch.Tensor | None = None) -> torch.Tensor:
    """Single-device reference of LASP-2's forward for ``size`` ranks on full ``[B, L, H, d]`` tensors."""
    log_decay = _log_decay(decay, q)
    parts = [
        [layout.shard_for_rank(x, "lasp2", r, size).transpose(1, 2) for r in range(size)] for x in (q, k, v)
    ]
    n = parts[0][0].shape[2]
    t = torch.arange(n, device=q.device)
    gamma = _powers(n - 1 - t, log_decay) if causal else 1.0
    # what the all-gather collects: every rank's memory state
    states = [k_r.transpose(-1, -2) @ (gamma * v_r) for k_r, v_r in zip(parts[1], parts[2], strict=True)]
    outs, prefix = [], torch.zeros_like(states[0])
    for rank, (q_r, k_r, v_r) in enumerate(zip(*parts, strict=True)):
        if causal:
            intra = ((q_r @ k_r.transpose(-1, -2)) * decay_mask(n, log_decay, True)) @ v_r
            outs.append(intra + (_powers(t + 1, log_decay) * q_r) @ prefix)
            prefix = torch.exp(n * log_decay) * prefix + states[rank]  # S_{r+1} = lambda^n S_r + M_r
        else:
            outs.append(q_r @ sum(states))
    return layout.unshard_parts([o.transpose(1, 2) for o in outs], "lasp2")
