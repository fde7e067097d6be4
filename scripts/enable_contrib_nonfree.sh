#!/usr/bin/env bash
# Opt-in: let apt read Debian bookworm's contrib and non-free sections, then (with --install)
# install the extra English voices the AdaSpeech source corpus can use (issue 27):
#   rhvoice-english (alan, bdl, clb, evgeniy-eng, lyubov; its slt is never used: it is the target),
#   libttspico-utils + libttspico-data (pico2wave en-US, en-GB),
#   mbrola + mbrola-us1/us2/us3/en1 (driven through espeak-ng's mb-* voices),
#   festvox-rablpc16k (festival's British diphone voice rab),
#   festvox-us1/us2/us3/en1 (festival driving those MBROLA voices: EMOTE's out-of-family validation split).
# `make install`, `make test` and `make demo` never need this: the corpus builder skips engines that
# are absent. Idempotent; writes one file, /etc/apt/sources.list.d/seqverse-contrib-nonfree.sources.
#   sudo scripts/enable_contrib_nonfree.sh            # add the source and run apt-get update
#   sudo scripts/enable_contrib_nonfree.sh --install  # ... and install the voices
#   sudo scripts/enable_contrib_nonfree.sh --remove   # take the source out again
set -euo pipefail

LIST=/etc/apt/sources.list.d/seqverse-contrib-nonfree.sources
VOICES=(rhvoice rhvoice-english libttspico-utils libttspico-data mbrola mbrola-us1 mbrola-us2 mbrola-us3
        mbrola-en1 festvox-rablpc16k festvox-us1 festvox-us2 festvox-us3 festvox-en1)

if [[ "${1:-}" == "--remove" ]]; then
  rm -f "$LIST"
  echo "removed $LIST"
  exit 0
fi
if [[ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" != "bookworm" ]]; then
  echo "enable_contrib_nonfree.sh: written for Debian bookworm; this is $(. /etc/os-release && echo "$PRETTY_NAME")" >&2
  exit 2
fi
if [[ ! -f "$LIST" ]]; then
  cat > "$LIST.tmp" <<'EOF'
# added by seqverse scripts/enable_contrib_nonfree.sh (opt-in; remove with --remove)
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  chmod 0644 "$LIST.tmp"
  mv "$LIST.tmp" "$LIST"
  echo "wrote $LIST"
fi
apt-get update -qq
if [[ "${1:-}" == "--install" ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${VOICES[@]}"
  dpkg -s "${VOICES[@]}" 2>/dev/null | grep -E '^(Package|Version):' | paste - -
fi
