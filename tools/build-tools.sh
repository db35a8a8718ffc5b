#!/usr/bin/env bash
# Builds the real spire-server, spire-agent and opa binaries the integration tests run.
# Binaries are cached by version outside the checkout and rebuilt only when missing.
# Prints the two environment lines the test rig reads (SPIRE_BIN_DIR, OPA_BIN) on success.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SPIRE_VERSION="1.13.3"
OPA_VERSION="1.22.2"
CACHE="${TACHIKOMA_TOOLS_CACHE:-$HOME/.cache/tachikoma-testbin}"
S="$CACHE/spire-$SPIRE_VERSION"
O="$CACHE/opa-$OPA_VERSION"

export GOTOOLCHAIN=local GOFLAGS=-modcacherw
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" GOMODCACHE="${GOMODCACHE:-$HOME/go/pkg/mod}"

log() { printf '[tools] %s\n' "$*" >&2; }

if ! command -v go >/dev/null; then
  log "go is not installed: the integration tests need Go >= 1.25 to build SPIRE and OPA"; exit 1
fi

build() { # name dir out cgo pkgs...
  local name="$1" dir="$2" out="$3" cgo="$4"; shift 4
  local tmp="$out.tmp.$$"
  log "building $name into $out (cold builds download modules and take minutes; progress below)"
  local start=$SECONDS
  mkdir -p "$tmp"
  ( cd "$dir" && CGO_ENABLED="$cgo" go build -v -trimpath -ldflags '-s -w' -o "$tmp/" "$@" ) 2>&1 \
    | awk -v n="$name" '{ c++; if (c % 50 == 0) { printf "[tools] %s: %d packages compiled, now %s\n", n, c, $0 > "/dev/stderr"; fflush("/dev/stderr") } }'
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then rm -rf "$tmp"; log "$name build failed (exit $rc)"; exit "$rc"; fi
  rm -rf "$out"; mv "$tmp" "$out"
  log "$name built in $((SECONDS - start)) s"
}

if [ -x "$S/spire-server" ] && [ -x "$S/spire-agent" ]; then
  log "spire $SPIRE_VERSION cached at $S"
else
  command -v gcc >/dev/null || { log "gcc is missing: spire-server needs cgo (apt-get install -y gcc)"; exit 1; }
  build "spire $SPIRE_VERSION" "$here/spire" "$S" 1 \
    github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent
fi

if [ -x "$O/opa" ]; then
  log "opa $OPA_VERSION cached at $O"
else
  build "opa $OPA_VERSION" "$here/opa" "$O" 0 github.com/open-policy-agent/opa
fi

echo "SPIRE_BIN_DIR=$S"
echo "OPA_BIN=$O/opa"
