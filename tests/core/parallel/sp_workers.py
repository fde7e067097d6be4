"""Worker code for the sequence-parallel tests: run P gloo processes, collect measurements.

Every rank builds the same full tensors from one seed, computes the single-device reference on
them, runs the distributed method on its shard and measures the largest absolute difference
against the matching shard of the reference. Rank 0 gathers all ranks' numbers and writes one
JSON file; the tests read it and assert.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from gloo_ranks import finish_rank, gather_by_key, spawn_ranks

from seqverse.core import parallel
from seqverse.core.parallel import comm
from seqverse.core.parallel.checkpoint import full_block_checkpoint_forward
from seqverse.core.parallel.layout import shard_for_rank

HEADS = {"mha": (4, 4), "gqa": (8, 2), "mqa": (4, 1)}


def run(size: int, cases: list[str], timeout: float = 170) -> dict:
    """Spawn ``size`` gloo processes running ``cases``; returns rank 0's results."""
    return spawn_ranks(_worker, size, cases, timeout=timeout)


def _worker(rank: int, size: int, init: str, cases: list[str], out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    results = {}
    for case in cases:
        results.update(CASES[case](rank, size))
    finish_rank(rank, gather_by_key(results), out)


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


def sdpa(q, k, v, causal):
    """Single-device reference: PyTorch SDPA on full ``[B, L, H, Dh]`` tensors (kv heads repeated)."""
    rep = q.shape[2] // k.shape[2]
    t = lambda x: x.transpose(1, 2)  # noqa: E731
    return t(
        F.scaled_dot_product_attention(
            t(q), t(k).repeat_interleave(rep, 1), t(v).repeat_interleave(rep, 1), is_causal=causal
        )
    )


def case_attention(rank, size):
    """All methods x causal/not x MHA/GQA/MQA: output and gradients against SDPA on full tensors."""
    res = {}
    for heads, (h, hkv) in HEADS.items():
        for causal in (True, False):
            gen = torch.Generator().manual_seed(1)
            b, length, dh = 2, 12 * size, 8
            q, dout = (torch.randn(b, length, h, dh, generator=gen) for _ in range(2))
            k, v = (torch.randn(b, length, hkv, dh, generator=gen) for _ in range(2))
            full = [x.clone().requires_grad_() for x in (q, k, v)]
            ref = sdpa(*full, causal)
            ref_grads = torch.autograd.grad(ref, full, dout)
            for method in parallel.METHODS:
                local = [shard_for_rank(x, method, rank, size).requires_grad_() for x in (q, k, v)]
                out = parallel.attention(*local, method, causal=causal)
                grads = torch.autograd.grad(out, local, shard_for_rank(dout, method, rank, size))
                errs = [_max_err(out, shard_for_rank(ref, method, rank, size))]
                ref_local = [shard_for_rank(r, method, rank, size) for r in ref_grads]
                errs += [_max_err(g, r) for g, r in zip(grads, ref_local, strict=True)]
                res[f"attention/{method}/{heads}/{'causal' if causal else 'full'}"] = errs
    return res


def case_linear(rank, size):
    """LASP-2 output and gradients against the reference math, L/P odd and even, with decay."""
    res = {}
    for n_local in (5, 8):
        for name, causal, decay in (
            ("causal", True, None),
            ("full", False, None),
            ("decay", True, torch.tensor([0.9, 0.5, 1.0])),
        ):
            gen = torch.Generator().manual_seed(2)
            q, k, v, dout = (0.5 * torch.randn(2, n_local * size, 3, 4, generator=gen) for _ in range(4))
            full = [x.clone().requires_grad_() for x in (q, k, v)]
            ref = parallel.linear_attention_ref(*full, causal, decay)
            ref_grads = torch.autograd.grad(ref, full, dout)
            local = [shard_for_rank(x, "lasp2", rank, size).requires_grad_() for x in (q, k, v)]
            out = parallel.linear_attention(*local, causal=causal, decay=decay)
            grads = torch.autograd.grad(out, local, shard_for_rank(dout, "lasp2", rank, size))
            errs = [_max_err(out, shard_for_rank(ref, "lasp2", rank, size))]
            ref_local = [shard_for_rank(r, "lasp2", rank, size) for r in ref_grads]
            errs += [_max_err(g, r) for g, r in zip(grads, ref_local, strict=True)]
            res[f"linear/{name}/n{n_local}"] = errs
    return res


def case_accounting(rank, size):
    """Measured work and bytes per rank: causal balance, formulas, LASP-2 bytes against length."""
    res = {}
    b, h, hkv, dh, length = 1, 8, 2, 8, 16 * size
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(b, length, h, dh, generator=gen)
    k, v = (torch.randn(b, length, hkv, dh, generator=gen) for _ in range(2))
    for method in parallel.METHODS:
        local = [shard_for_rank(x, method, rank, size).requires_grad_() for x in (q, k, v)]
        with comm.track() as ledger:
            out = parallel.attention(*local, method, causal=True)
            out.sum().backward()
        res[f"work/{method}"] = ledger.work(method, "forward")
        res[f"bytes/{method}"] = [ledger.bytes_sent(method, "forward"), ledger.bytes_sent(method, "backward")]
    for length in (64 * size, 256 * size, 1024 * size):
        gen = torch.Generator().manual_seed(4)
        q, k, v = (
            shard_for_rank(torch.randn(1, length, 2, 4, generator=gen), "lasp2", rank, size).requires_grad_()
            for _ in range(3)
        )
        with comm.track() as ledger:
            parallel.linear_attention(q, k, v).sum().backward()
        res[f"lasp2_bytes/{length}"] = ledger.bytes_sent("lasp2")
    return res


def case_all_to_all(rank, size):
    """The P2P all-to-all fallback and gloo's native all_to_all both deliver the expected blocks."""
    inputs = [100.0 * rank + 6 * dst + torch.arange(6.0) for dst in range(size)]  # block for rank dst
    expected = torch.stack([100.0 * src + 6 * rank + torch.arange(6.0) for src in range(size)])
    native, fallback = ([torch.empty(6) for _ in range(size)] for _ in range(2))
    dist.all_to_all(native, inputs)
    comm.all_to_all_p2p(fallback, inputs, None)
    return {
        "all_to_all/native": _max_err(torch.stack(native), expected),
        "all_to_all/fallback": _max_err(torch.stack(fallback), expected),
    }


def case_checkpoint(rank, size):
    """Remat-aware checkpointing of a sequence-parallel 2-layer stack: grads and forward counts."""
    from seqverse.core.backbones import build

    res = {}
    for method in ("ring", "ulysses"):
        grads, counts = {}, {}
        for mode in ("none", "full", "remat"):
            torch.manual_seed(0)
            model = parallel.parallelize(build("attention", 32, 2, n_heads=4, n_kv_heads=2), method)
            if mode == "remat":
                parallel.checkpoint_blocks(model)
            x = shard_for_rank(
                torch.randn(2, 8 * size, 32, generator=torch.Generator().manual_seed(5)), method, rank, size
            )
            before = parallel.attention_forwards()
            # "full": ordinary activation checkpointing of each block
            y = full_block_checkpoint_forward(model, x) if mode == "full" else model(x)
            (y**2).sum().backward()
            counts[mode] = parallel.attention_forwards() - before
            grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
        res[f"checkpoint/{method}/counts"] = counts
        res[f"checkpoint/{method}/grad_err"] = max(
            _max_err(grads["remat"], grads["none"]), _max_err(grads["full"], grads["none"])
        )
    return res


def case_train(rank, size):
    """A few steps of the trainer under sequence parallelism (compared with one process by the test)."""
    from seqverse.core.train import LMConfig, train_lm

    res = {}
    for method in ("ring", "lightseq", "ulysses"):
        config = LMConfig(sequence_parallel=method, steps=4, seq_len=16 * size, d_model=32, n_layers=2)
        res[f"train/{method}"] = train_lm(config, device="cpu").losses()
    # data x sequence parallel: SP rows of 2 ranks (ring), the batch split over the size/2 rows
    config = LMConfig(sequence_parallel="ring", sp_size=2, steps=3, seq_len=16, batch_size=size // 2 * 2,
                      d_model=16, n_layers=1, n_heads=2, n_kv_heads=1)
    res["train_mesh"] = train_lm(config, device="cpu").losses()
    return res


def case_hyena(rank, size):
    """Sequence-parallel Hyena (order 2 and 3, short filter 3 and 1) against the operator on the
    whole sequence: output block, input-gradient block and parameter gradients (summed over ranks)."""
    from seqverse.core.backbones.hyena import HyenaOperator
    from seqverse.core.parallel.hyena import parallelize_hyena

    res = {}
    for order, short in ((2, 3), (3, 1)):
        n = 6
        length = n * size
        torch.manual_seed(4)
        op = HyenaOperator(8, l_max=length, order=order, filter_order=8, emb_dim=5, short_filter_order=short)
        gen = torch.Generator().manual_seed(5)
        u = torch.randn(2, length, 8, generator=gen)
        dout = torch.randn(2, length, 8, generator=gen)
        full = u.clone().requires_grad_()
        ref = op(full)
        ref.backward(dout)
        ref_grads = {k: p.grad.clone() for k, p in op.named_parameters()}
        op.zero_grad(set_to_none=True)
        parallelize_hyena(op, None)
        local = u[:, rank * n : (rank + 1) * n].clone().requires_grad_()
        out = op(local)
        out.backward(dout[:, rank * n : (rank + 1) * n])
        errs = [_max_err(out, ref[:, rank * n : (rank + 1) * n]), _max_err(local.grad, full.grad[:, rank * n : (rank + 1) * n])]
        for k, p in op.named_parameters():
            g = p.grad.clone()
            dist.all_reduce(g)
            errs.append(_max_err(g, ref_grads[k]) / (1 + float(ref_grads[k].abs().max())))
        res[f"hyena/order{order}/short{short}"] = errs
    return res


FLEXSP = dict(n_seq=4, max_len=24, min_len=4, capacity=24)


def flexsp_config():
    from seqverse.core.train import LMConfig

    return LMConfig(steps=3, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, seed=2)


def case_flexsp(rank, size):
    """The demo LM trained 3 steps with the planner's process groups and with static SP."""
    from seqverse.core.train.flexsp import train_flexsp

    res = {}
    for mode in ("flexsp", "static"):
        result = train_flexsp(flexsp_config(), mode=mode, **FLEXSP)
        res[f"flexsp/{mode}/losses"] = result.losses()
        res[f"flexsp/{mode}/groups"] = [h["groups"] for h in result.history]
    return res


CASES = {
    "flexsp": case_flexsp,
    "hyena": case_hyena,
    "attention": case_attention,
    "linear": case_linear,
    "accounting": case_accounting,
    "all_to_all": case_all_to_all,
    "checkpoint": case_checkpoint,
    "train": case_train,
}
