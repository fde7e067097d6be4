"""What every seqverse command line shares: error reporting, ``--json`` output, tables, ``info``.

Commands are thin: each parses its flags and calls a documented Python function. User errors
(bad files, bad ids, bad flags) are raised as :class:`InputError` and become one clear line on
stderr and exit status 2, with no traceback and no partial output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata


class InputError(Exception):
    """A problem with what the user gave us; the message names the file and line or id."""


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None, file=None) -> None:
    """Print rows of dicts as an aligned plain-text table."""
    file = file or sys.stdout
    if not rows:
        return
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)), file=file)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def emit(result, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print a result (a dict or a list of dicts) as JSON or as a table."""
    if as_json:
        print(json.dumps(result, indent=2))
    elif isinstance(result, dict):
        print_table([{"key": k, "value": v} for k, v in result.items()])
    else:
        print_table(result, columns)


def environment_info(package: str) -> dict:
    """Versions of a seqverse package, core and torch, and the device that will be used."""
    import torch

    info = {"package": package}
    for name in (package, "seqverse-core"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    info["python"] = platform.python_version()
    info["torch"] = torch.__version__
    info["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    return info


def add_info_command(subparsers, package: str) -> None:
    p = subparsers.add_parser("info", help="print versions and the device that will be used")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lambda args: emit(environment_info(package), args.json))


def package_parser(prog: str, package: str, description: str):
    """The top-level parser every seqverse command shares: ``info`` plus the package's own groups.

    Returns ``(parser, subparsers)``; systems add their sub-command group to ``subparsers``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_info_command(sub, package)
    return parser, sub


def add_system_groups(subparsers, package_module: str, systems: Sequence[str]) -> None:
    """Let each system of a domain package add its own sub-command group.

    A system ``seqverse.<domain>.<name>`` owns ``<name>/cli.py`` with ``register(subparsers)``;
    it imports only argparse-level code at that point (heavy imports happen inside the command),
    so ``--help`` stays fast. Systems whose sub-package has not landed yet are skipped.
    """
    import importlib

    for name in systems:
        module_name = f"{package_module}.{name}.cli"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name in (module_name, f"{package_module}.{name}"):
                continue
            raise
        module.register(subparsers)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, call the chosen command's ``func``, turn user errors into exit status 2."""
    args = parser.parse_args(argv)
    func: Callable | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        func(args)
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        try:  # so the interpreter's final flush of stdout does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    return 0
