"""`seqverse-vision`: one sub-command group per system: full-page receipt OCR (ocr), OAT gaze scanpaths (oat).

Systems add their group in `build_parser` as they land; `info` reports versions and device.
"""

from __future__ import annotations

import argparse

from seqverse.core import clikit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqverse-vision",
        description="seqverse vision: full-page receipt OCR (ocr), OAT gaze scanpaths (oat).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    clikit.add_info_command(sub, "seqverse-vision")
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
