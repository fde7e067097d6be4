"""`seqverse`: the core command line (backbone demo and benchmarks)."""

from __future__ import annotations

import argparse

from seqverse.core import clikit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqverse", description="seqverse core: sequence backbones.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    clikit.add_info_command(sub, "seqverse-core")
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
