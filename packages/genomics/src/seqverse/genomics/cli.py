"""`seqverse-genomics`: one sub-command group per system: DNA-ESA read alignment (esa), HyenaDNA (hyena), ProLLaMA (prollama).

Systems add their group in `build_parser` as they land; `info` reports versions and device.
"""

from __future__ import annotations

import argparse

from seqverse.core import clikit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqverse-genomics",
        description="seqverse genomics: DNA-ESA read alignment (esa), HyenaDNA (hyena), ProLLaMA (prollama).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    clikit.add_info_command(sub, "seqverse-genomics")
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
