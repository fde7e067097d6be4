"""`seqverse-genomics`: one sub-command group per system: DNA-ESA read alignment (esa), HyenaDNA (hyena), ProLLaMA (prollama).

Systems add their group in `build_parser` as they land; `info` reports versions and device.
"""

from __future__ import annotations

from seqverse.core import clikit


def build_parser():
    parser, _sub = clikit.package_parser("seqverse-genomics", "seqverse-genomics", "seqverse genomics: DNA-ESA read alignment (esa), HyenaDNA (hyena), ProLLaMA (prollama).")
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
