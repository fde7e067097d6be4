"""`seqverse-genomics`: one sub-command group per system: DNA-ESA read alignment (esa), HyenaDNA (hyena), ProLLaMA (prollama).

Each system registers its group from its own `<system>/cli.py` (see SYSTEMS); `info` reports versions and device.
"""

from __future__ import annotations

from seqverse.core import clikit

# Each system's sub-package provides <system>/cli.py with register(subparsers).
SYSTEMS = ('esa', 'hyenadna', 'prollama')


def build_parser():
    parser, sub = clikit.package_parser("seqverse-genomics", "seqverse-genomics", "seqverse genomics: DNA and protein sequence models. "
                                         "One command group per system installed here (systems that do not import are not listed).")
    clikit.add_system_groups(sub, "seqverse.genomics", SYSTEMS)
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
