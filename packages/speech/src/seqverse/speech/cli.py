"""`seqverse-speech`: one sub-command group per system: AdaSpeech adaptive TTS (adaspeech), EMOTE face animation (emote).

Each system registers its group from its own `<system>/cli.py` (see SYSTEMS); `info` reports versions and device.
"""

from __future__ import annotations

from seqverse.core import clikit

# Each system's sub-package provides <system>/cli.py with register(subparsers).
SYSTEMS = ('adaspeech', 'emote')


def build_parser():
    parser, sub = clikit.package_parser("seqverse-speech", "seqverse-speech", "seqverse speech: speech and talking-face models. "
                                         "One command group per system installed here (systems that do not import are not listed).")
    clikit.add_system_groups(sub, "seqverse.speech", SYSTEMS)
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
