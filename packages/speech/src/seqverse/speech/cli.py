"""`seqverse-speech`: one sub-command group per system: AdaSpeech adaptive TTS (adaspeech), EMOTE face animation (emote).

Systems add their group in `build_parser` as they land; `info` reports versions and device.
"""

from __future__ import annotations

from seqverse.core import clikit


def build_parser():
    parser, _sub = clikit.package_parser("seqverse-speech", "seqverse-speech", "seqverse speech: AdaSpeech adaptive TTS (adaspeech), EMOTE face animation (emote).")
    return parser


def main(argv=None) -> int:
    return clikit.run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
