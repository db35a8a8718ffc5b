#!/usr/bin/env bash
# Builds the go-spiffe v2.9.0 Workload API client (test/interop/go-spiffe) that the interop tests
# and the fetch benchmark run. Cached by version outside the checkout, like tools/build-tools.sh;
# rebuilt only when missing. Prints the binary's path on success.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO_SPIFFE_VERSION="2.9.0"
CACHE="${TACHIKOMA_TOOLS_CACHE:-$HOME/.cache/tachikoma-testbin}"
OUT="$CACHE/interop-go-spiffe-$GO_SPIFFE_VERSION"
BIN="$OUT/interop"

export GOTOOLCHAIN=local GOFLAGS=-modcacherw
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" GOMODCACHE="${GOMODCACHE:-$HOME/go/pkg/mod}"

# Rebuild when the program's sources are newer than the binary.
if [ -x "$BIN" ] && [ "$BIN" -nt "$here/go-spiffe/main.go" ] && [ "$BIN" -nt "$here/go-spiffe/go.sum" ]; then
  echo "$BIN"; exit 0
fi
command -v go >/dev/null || { echo "[interop] go is not installed" >&2; exit 1; }
echo "[interop] building the go-spiffe $GO_SPIFFE_VERSION client into $OUT" >&2
tmp="$OUT.tmp.$$"
mkdir -p "$tmp"
( cd "$here/go-spiffe" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/interop" . ) >&2 \
  || { rm -rf "$tmp"; echo "[interop] build failed" >&2; exit 1; }
rm -rf "$OUT"; mv "$tmp" "$OUT"
echo "$BIN"
