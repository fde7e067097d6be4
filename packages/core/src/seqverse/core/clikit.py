"""What every seqverse command line shares: the user-error rule, argument types, atomic outputs,
``--json`` output, tables, ``info``.

The user-error rule
-------------------
A command either succeeds (exit 0) or fails in one of two ways:

* **The user's fault** -- a bad flag value, a missing or malformed file, an unknown id. This is
  reported as exactly one line on stderr, ``PROG: error: MESSAGE``, exit status 2, no traceback and
  no output left behind. The message names the argument (``--temperature``), or the file and its
  line/record/id (``reads.fq: record 3 (r7): ...``), and says what would be valid.
  Code signals it by raising :class:`UserError` (alias :class:`InputError`). ``OSError``\\ s that
  carry a file name the user gave (``FileNotFoundError``, ``IsADirectoryError``,
  ``NotADirectoryError``, ``PermissionError``) count as user errors too.
* **Our fault** -- any other exception (``ValueError`` and ``ZeroDivisionError`` from inner code
  included) is a bug and is allowed to print its traceback. Inner code trusts its inputs: validate
  once, at the boundary -- flag values at parse time with the types below, file contents in the
  readers (which raise :class:`UserError`).

Flag values are checked while parsing with the argparse types of this module (:func:`positive_int`,
:func:`nonneg_int`, :func:`int_range`, :func:`float_range`, :func:`positive_float`,
:func:`probability`, :func:`existing_file`, :func:`existing_dir`, :func:`output_file`,
:func:`output_dir`, :func:`int_list`). Parsers made by :func:`package_parser` (and every
sub-parser added below them) report those errors in the same one-line form.

Outputs are written whole or not at all: :func:`atomic_write` (a file object) and
:func:`atomic_path` (a temporary path for libraries that write by name) write beside the target
and rename into place on success, with the ordinary file mode (0644 under the usual umask 022),
and remove the temporary file -- and any directory they had to create -- on failure. Code that
builds a whole output directory pairs :func:`make_parents` with :func:`remove_created`.

Help tells the truth: every option has help text and its default is shown once (the formatter
adds ``(default: X)`` unless the help text already mentions the default); a domain's top-level help
lists only the system groups that import on this machine (:func:`add_system_groups`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path


class InputError(Exception):
    """A problem with what the user gave us; the message names the argument, or the file and line or id."""


UserError = InputError  # the name used by the user-error rule above; one class, two names

# OSErrors caused by a path the user named: reported like UserError (one line, exit 2).
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


# ----------------------------------------------------------------------------- argparse types
def _number(text: str, kind: type):
    """Parse an int (accepting integral floats such as 1e6) or a float; reject nan/inf."""
    text = str(text).strip()
    if kind is int:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not math.isfinite(value) or not value.is_integer():
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        return int(value)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _named(func: Callable, name: str) -> Callable:
    func.__name__ = name  # argparse names the type in some messages
    return func


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]`` (either bound may be None); integral floats like ``1e6`` are accepted."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_bounds(lo, hi)}, got {text}")
        return value

    return _named(parse, "int")


def float_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """A finite float in ``[lo, hi]``; ``lo_open``/``hi_open`` exclude the bound itself."""

    def parse(text: str) -> float:
        value = _number(text, float)
        bad = (lo is not None and (value < lo or (lo_open and value == lo))) or (
            hi is not None and (value > hi or (hi_open and value == hi)))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {_bounds(lo, hi, lo_open, hi_open)}, got {text}")
        return value

    return _named(parse, "float")


def _bounds(lo, hi, lo_open=False, hi_open=False) -> str:
    def show(x):
        return str(x) if isinstance(x, int) else f"{x:g}"

    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {show(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {show(hi)}")
    return " and ".join(parts) or "a number"


positive_int = int_range(1)
positive_int.__doc__ = "An integer >= 1."
nonneg_int = int_range(0)
nonneg_int.__doc__ = "An integer >= 0."
positive_float = float_range(0, lo_open=True)
positive_float.__doc__ = "A finite float > 0."
nonneg_float = float_range(0)
nonneg_float.__doc__ = "A finite float >= 0."
probability = float_range(0, 1)
probability.__doc__ = "A float in [0, 1]."


def int_list(lo: int | None = 1, hi: int | None = None) -> Callable[[str], list[int]]:
    """A comma-separated list of integers, each in ``[lo, hi]``; at least one."""
    item = int_range(lo, hi)

    def parse(text: str) -> list[int]:
        cells = [c.strip() for c in str(text).split(",") if c.strip()]
        if not cells:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        try:
            return [item(c) for c in cells]
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"{err} (in {text!r})") from None

    return _named(parse, "int_list")


def existing_file(text: str) -> str:
    """A path to an existing, readable regular file (returned unchanged)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable (permission denied)")
    return text


def existing_dir(text: str) -> str:
    """A path to an existing directory (returned unchanged)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a directory")
    return text


def output_file(text: str) -> str:
    """A file path to write: not an existing directory, and not an empty name."""
    if not str(text).strip():
        raise argparse.ArgumentTypeError("empty output path")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file name")
    return text


def output_dir(text: str) -> str:
    """A directory path to write into: not an existing file, and not an empty name."""
    if not str(text).strip():
        raise argparse.ArgumentTypeError("empty output path")
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    return text


# ----------------------------------------------------------------------------- atomic outputs
def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def make_parents(directory: str | os.PathLike) -> list[Path]:
    """Create ``directory`` and missing parents; return the ones created (deepest last), so a failed
    write can take them away again with :func:`remove_created`."""
    directory = Path(directory)
    created = []
    for parent in reversed([directory, *directory.parents]):
        if not parent.exists():
            created.append(parent)
    directory.mkdir(parents=True, exist_ok=True)
    return created


def remove_created(created: list[Path]) -> None:
    """Remove the directories :func:`make_parents` made, deepest first, while they are empty."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            break


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success give it the ordinary file mode and rename
    it to ``path``; on any error remove it (and parent directories this call created).

    For libraries that write by file name (``soundfile.write``, ``safetensors.save_file``,
    ``numpy.save``). ``suffix`` defaults to ``path``'s own, for writers that pick a format by it.
    """
    path = Path(path)
    created = make_parents(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else (path.suffix or ".tmp"),
                               dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        remove_created(created)
        raise


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs):
    """Open a temporary file beside ``path`` for writing; rename it into place (mode 0644 under
    umask 022) only when the block finishes without an exception."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle


# ----------------------------------------------------------------------------- output
def read_record_field(path: str | os.PathLike, key: str, what: str):
    """Field ``key`` of a small JSON record kept beside a model (e.g. which decoding or fold it uses), or None
    when the file is absent; an InputError naming the file when it is not such a record."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())[key]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a valid {what} ({e})") from None


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


# ----------------------------------------------------------------------------- parsers and help
_MENTIONS_DEFAULT = re.compile(r"%\(default\)|\bdefault\b", re.IGNORECASE)


class _DefaultsOnce:
    """Append ``(default: X)`` to an option's help unless the text already mentions its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default is None or action.default is False or action.default == argparse.SUPPRESS
                or _MENTIONS_DEFAULT.search(text)
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
                or (not action.option_strings and action.nargs in ("*", "+"))):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class HelpFormatter(_DefaultsOnce, argparse.HelpFormatter):
    """Wrapped descriptions; each option's default shown once."""


class RawHelpFormatter(_DefaultsOnce, argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs printed as written (examples); each option's default shown once."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``PROG: error: ...``, exit 2) and whose help
    shows each default once. Sub-parsers added under it are Parsers too."""

    def __init__(self, *args, **kwargs):
        fmt = kwargs.get("formatter_class", argparse.HelpFormatter)
        if fmt in (argparse.RawDescriptionHelpFormatter, argparse.RawTextHelpFormatter):
            kwargs["formatter_class"] = RawHelpFormatter
        elif fmt in (argparse.HelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip()) or "error"


def package_parser(prog: str, package: str, description: str):
    """The top-level parser every seqverse command shares: ``info`` plus the package's own groups.

    Returns ``(parser, subparsers)``; systems add their sub-command group to ``subparsers``.
    """
    parser = Parser(prog=prog, description=description)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_info_command(sub, package)
    return parser, sub


def add_system_groups(subparsers, package_module: str, systems: Sequence[str]) -> list[str]:
    """Let each system of a domain package add its own sub-command group; return those added.

    A system ``seqverse.<domain>.<name>`` owns ``<name>/cli.py`` with ``register(subparsers)``;
    it imports only argparse-level code at that point (heavy imports happen inside the command),
    so ``--help`` stays fast. The cli module may list its third-party imports in
    ``REQUIRES = ("peft", ...)``. A group is listed only when it is importable here: a system whose
    sub-package has not landed, or whose cli/REQUIRES module is missing, is left out of ``--help``.
    """
    import importlib
    import importlib.util

    added = []
    for name in systems:
        module_name = f"{package_module}.{name}.cli"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        if any(importlib.util.find_spec(req) is None for req in getattr(module, "REQUIRES", ())):
            continue
        module.register(subparsers)
        added.append(name)
    return added


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, call the chosen command's ``func``; apply the user-error rule (module docstring)."""
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # argparse: --help (0) or a usage error (2, already printed)
            return stop.code if isinstance(stop.code, int) else 2
        func: Callable | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        func(args)
    except InputError as err:
        print(f"{parser.prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except USER_OS_ERRORS as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"{parser.prog}: error: {where}{_one_line(err.strerror or err)}", file=sys.stderr)
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
