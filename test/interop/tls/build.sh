#!/usr/bin/env bash
# Builds the go-spiffe v2.9.0 mTLS peer (test/interop/tls/go) into the tools cache, outside the
# checkout, in a directory keyed by a hash of its sources; rebuilt only when they change.
# Prints the binary's path on success.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/go"
hash="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)"
CACHE="${TACHIKOMA_TOOLS_CACHE:-$HOME/.cache/tachikoma-testbin}"
OUT="$CACHE/interop-tls-go-spiffe-2.9.0-$hash"
BIN="$OUT/interop-tls"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
export GOTOOLCHAIN=local GOFLAGS=-modcacherw
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" GOMODCACHE="${GOMODCACHE:-$HOME/go/pkg/mod}"
command -v go >/dev/null || { echo "[interop-tls] go is not installed" >&2; exit 1; }
echo "[interop-tls] building the go-spiffe mTLS peer into $OUT" >&2
tmp="$OUT.tmp.$$"
mkdir -p "$tmp"
( cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/interop-tls" . ) >&2 \
  || { rm -rf "$tmp"; echo "[interop-tls] build failed" >&2; exit 1; }
rm -rf "$OUT"; mv "$tmp" "$OUT"
echo "$BIN"
