#!/usr/bin/env bash
# Runs OpenFeature's official OFREP provider for Node
# (@openfeature/server-sdk with @openfeature/ofrep-provider, versions
# pinned in openfeature/node/package-lock.json) against `pipit up --ofrep`
# built from this tree: installs Node and npm from Debian's packages when
# they are missing, and the npm packages into openfeature/node.
set -euo pipefail
cd "$(dirname "$0")/.."

bash hack/install-debian.sh nodejs /usr/bin/node
bash hack/install-debian.sh npm /usr/bin/npm

(cd openfeature/node && npm ci --no-audit --no-fund --loglevel=error)

bin=$(mktemp -d)/pipit
trap 'rm -rf "$(dirname "$bin")"' EXIT
${GO:-go} build -o "$bin" ./cmd/pipit
cd openfeature/node
PIPIT_BIN=$bin node --test
