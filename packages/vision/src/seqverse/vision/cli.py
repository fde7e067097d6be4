"""`seqverse-vision`: one sub-command group per system: full-page receipt OCR (ocr), OAT gaze scanpaths (oat).

Each system registers its group from its own `<system>/cli.py` (see SYSTEMS); `info` reports versions and device.
"""

from __future__ import annotations

from seqverse.core import clikit

# Each system's sub-package provides <system>/cli.py with register(subparsers).
SYSTEMS = ('ocr', 'oat')


def build_parser():
    parser, sub = clikit.package_parser("seqverse-vision", "seqverse-vision", "seqverse vision: vision sequence models. "
                                         "One command group per system installed here (systems that do not import are not listed).")
    clikit.add_system_groups(sub, "seqverse.vision", SYSTEMS)
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
