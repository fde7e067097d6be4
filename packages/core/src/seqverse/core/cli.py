"""`seqverse`: the core command line: a demo of the backbones and the benchmark suites.

    seqverse demo                                     # build every backbone, check step == forward
    seqverse bench synthetic --task mqar --backbone mamba
    seqverse bench speed --backbone s4d,attention --seq-len 1024,4096
    seqverse bench parallel --sizes 2,4
"""

from __future__ import annotations

import argparse
import sys
import time

from seqverse.core import clikit


def _backbone_list(text: str) -> list[str]:
    from seqverse.core.backbones import NAMES

    names = list(NAMES) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in NAMES:
            raise argparse.ArgumentTypeError(f"unknown backbone {name!r}; choose from: {', '.join(NAMES)} or 'all'")
    if not names:
        raise argparse.ArgumentTypeError("no backbone named")
    return names


def _device(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N``, and CUDA only when it is there."""
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine")
        if ":" in text and int(text.split(":")[1]) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: only {torch.cuda.device_count()} CUDA device(s)")
    return text


def _check_synthetic(task: str, options: dict, backbones: list[str], d_model: int, n_layers: int) -> None:
    """Validate task sizes and backbone shapes once, at the boundary, naming the flags."""
    from seqverse.core.backbones import build
    from seqverse.core.bench.synthetic import DEFAULTS
    from seqverse.core.bench.tasks import TASKS

    try:
        TASKS[task](2, **{**DEFAULTS[task], **options})
    except ValueError as err:
        raise clikit.InputError(f"--task {task}: {err} (see --seq-len, --vocab-size, --num-kv-pairs, --num-tokens)") from None
    for name in backbones:
        try:
            build(name, d_model=d_model, n_layers=1, **({"l_max": 4} if name == "hyena" else {}))
        except ValueError as err:
            raise clikit.InputError(f"--backbone {name} with --d-model {d_model}: {err}") from None


def _task_options(args) -> dict:
    options = {"seq_len": args.seq_len, "vocab_size": args.vocab_size}
    if args.num_kv_pairs is not None:
        options["num_kv_pairs"] = args.num_kv_pairs
    if args.num_tokens is not None:
        options["num_tokens"] = args.num_tokens
    if args.zero_gaps:
        if args.task != "mqar":
            raise clikit.InputError("--zero-gaps applies to --task mqar only")
        options["random_non_queries"] = False
    return {k: v for k, v in options.items() if v is not None}


def _synthetic(args) -> None:
    from seqverse.core.bench.synthetic import SyntheticRun, run_synthetic

    backbones = args.backbone
    options = _task_options(args)
    _check_synthetic(args.task, options, backbones, args.d_model, args.n_layers)
    rows = []
    for backbone in backbones:
        run = SyntheticRun(
            task=args.task,
            backbone=backbone,
            task_options=options,
            d_model=args.d_model,
            n_layers=args.n_layers,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
        )
        rows.append(run_synthetic(run, progress=not args.json, device=args.device))
    clikit.emit(rows, args.json, ["task", "backbone", "params", "steps", "final_loss", "test_accuracy", "train_seconds"])


def _speed(args) -> None:
    from seqverse.core.bench.speed import plot, run_speed

    rows = run_speed(
        args.backbone,
        args.seq_len,
        progress=not args.json,
        timeout=args.timeout,
        d_model=args.d_model,
        n_layers=args.n_layers,
        batch_size=args.batch_size,
        device=args.device or _default_device(),
        threads=args.threads,
    )
    if args.plot:
        with clikit.atomic_path(args.plot) as tmp:
            plot(rows, tmp)
        print(f"wrote {args.plot}", file=sys.stderr)
    columns = ["backbone", "seq_len", "tokens_per_second", "speedup_vs_attention", "peak_memory_mb",
               "step_latency_ms", "error"]
    clikit.emit(rows, args.json, columns)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_bench(sub) -> None:
    from seqverse.core.backbones import NAMES
    from seqverse.core.bench.synthetic import DEFAULTS
    from seqverse.core.parallel import bench as parallel_bench

    pos, nonneg = clikit.positive_int, clikit.nonneg_int
    width, layers, batch = clikit.int_range(1, 8192), clikit.int_range(1, 64), clikit.int_range(1, 65536)

    bench = sub.add_parser("bench", help="benchmark suites: synthetic tasks, speed, sequence parallelism")
    bench_sub = bench.add_subparsers(title="suites", metavar="SUITE", required=True)

    p = bench_sub.add_parser(
        "synthetic",
        help="train a small model on a synthetic recall/copy task and report test accuracy",
        description="Train embedding -> N-layer backbone -> head on a synthetic task (fresh examples every step) "
        "and report accuracy on 1000 held-out examples at the answer positions. Task defaults: "
        + "; ".join(f"{t}: {', '.join(f'{k}={v}' for k, v in o.items())}" for t, o in DEFAULTS.items()),
    )
    p.add_argument("--task", required=True, choices=list(DEFAULTS), help="mqar (Zoology), selective-copy or "
                   "induction (Mamba paper Sec. 4.1)")
    p.add_argument("--backbone", default="all", type=_backbone_list,
                   help=f"one of {', '.join(NAMES)}, a comma list, or 'all' (default all)")
    p.add_argument("--seq-len", type=clikit.int_range(4, 2**20), help="sequence length (task default if omitted)")
    p.add_argument("--vocab-size", type=clikit.int_range(3, 2**20), help="vocabulary size (task default if omitted)")
    p.add_argument("--num-kv-pairs", type=pos, help="MQAR: key-value pairs per example (task default if omitted)")
    p.add_argument("--num-tokens", type=pos, help="selective copy: tokens to copy (task default if omitted)")
    p.add_argument("--zero-gaps", action="store_true", help="MQAR: fill the query region between queries with "
                   "token 0 instead of random tokens (Zoology's random_non_queries=False)")
    p.add_argument("--d-model", type=width, default=128, help="model width (default 128)")
    p.add_argument("--n-layers", type=layers, default=2, help="backbone layers (default 2)")
    p.add_argument("--steps", type=pos, default=2000, help="training steps (default 2000)")
    p.add_argument("--batch-size", type=batch, default=64, help="examples per step (default 64)")
    p.add_argument("--lr", type=clikit.positive_float, default=1e-3,
                   help="peak learning rate, warm-up then cosine (default 1e-3)")
    p.add_argument("--seed", type=nonneg, default=0, help="seed of the model and the generated examples")
    p.add_argument("--device", type=_device, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_synthetic)

    p = bench_sub.add_parser(
        "speed",
        help="forward+backward tokens/s, peak memory and recurrent step latency per length",
        description="Each (backbone, length) runs in its own process so peak memory is its own. Tokens/s is "
        "the best of 2 forward+backward passes after a warm-up; step latency is one recurrent step with "
        "seq-len positions already in context (a filled KV cache for attention).",
    )
    p.add_argument("--backbone", default="all", type=_backbone_list,
                   help=f"one of {', '.join(NAMES)}, a comma list, or 'all' (default all)")
    p.add_argument("--seq-len", type=clikit.int_list(2, 2**24), default=[1024, 4096, 16384, 65536],
                   help="comma-separated lengths (default 1024,4096,16384,65536)")
    p.add_argument("--d-model", type=width, default=128, help="model width (default 128)")
    p.add_argument("--n-layers", type=layers, default=1, help="backbone layers (default 1)")
    p.add_argument("--batch-size", type=batch, default=1, help="sequences per pass (default 1)")
    p.add_argument("--threads", type=clikit.int_range(1, 1024), help="CPU threads per run (default: torch's default)")
    p.add_argument("--timeout", type=clikit.positive_float, default=900, help="seconds allowed per (backbone, length) run")
    p.add_argument("--device", type=_device, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--plot", metavar="PNG", type=clikit.output_file, help="also write a tokens/s and memory plot here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_speed)

    parallel_bench.add_parser(bench_sub)


def _demo(args) -> None:
    """Build each backbone, run forward and the recurrent mode over a short sequence, compare them."""
    import torch

    from seqverse.core.backbones import NAMES, build

    torch.manual_seed(0)
    rows = []
    for name in NAMES:
        model = build(name, d_model=64, n_layers=2).eval()
        x = torch.randn(2, 64, 64)
        start = time.perf_counter()
        with torch.no_grad():
            y = model(x)
            forward_ms = (time.perf_counter() - start) * 1e3
            state, steps = model.init_state(2), []
            for t in range(x.shape[1]):
                y_t, state = model.step(x[:, t], state)
                steps.append(y_t)
        gap = (torch.stack(steps, 1) - y).abs().max().item() / y.abs().max().item()
        rows.append({"backbone": name, "params": sum(p.numel() for p in model.parameters()),
                     "forward_ms": forward_ms, "step_vs_forward_rel_err": gap,
                     "ok": "yes" if gap < 1e-4 else "NO"})
    if not args.json:
        print("seqverse core: 2-layer backbones, d_model 64, 64 positions; recurrent step mode against forward")
    clikit.emit(rows, args.json)
    if any(r["ok"] != "yes" for r in rows):
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    parser, sub = clikit.package_parser(
        "seqverse", "seqverse-core", "seqverse core: sequence backbones, benchmarks and parallel training."
    )
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.epilog = "examples:\n" + (__doc__ or "").split("\n\n")[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("demo", help="build every backbone and check recurrent mode against forward")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_demo)
    _add_bench(sub)
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())

