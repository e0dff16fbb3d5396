#!/usr/bin/env bash
# Builds golang.org/x/tools/cmd/deadcode at the version tools/go.mod pins
# into a cache outside the work tree, and prints the binary's path. Skipped
# when that version is already built. Needs only the Go module proxy, so it
# works on a clean clone in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
version=$(awk '$1 == "golang.org/x/tools" { print $2 }' tools/go.mod)
if [ -z "$version" ]; then
  echo "install-deadcode: tools/go.mod pins no golang.org/x/tools version" >&2
  exit 1
fi
bin=${PIPIT_TOOLS_CACHE:-$HOME/.cache/pipit-tools}/deadcode-$version/deadcode

if [ ! -x "$bin" ]; then
  mkdir -p "$(dirname "$bin")"
  # Built beside its final name and renamed, so a killed build never
  # leaves a binary that looks installed.
  tmp=$(mktemp "$bin.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  (cd tools && "$GO" build -o "$tmp" golang.org/x/tools/cmd/deadcode)
  mv "$tmp" "$bin"
fi
echo "$bin"
