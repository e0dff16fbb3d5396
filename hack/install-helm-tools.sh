#!/usr/bin/env bash
# Builds what the Helm chart's tests run, from the pins of hack/helm-tools
# (a module of its own, so that pipit's go.mod does not carry Helm), into a
# cache outside the work tree keyed by Helm's version, and prints the
# directory holding them:
#   helm             helm.sh/helm/v4/cmd/helm (lint, template)
#   kustomize-build  what `kubectl apply -k DIR` applies (sigs.k8s.io/kustomize/api)
# Skipped when already built; needs only the Go module proxy (a few minutes
# the first time on two idle cores).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

GO=${GO:-go}
version=$(awk '$1 == "helm.sh/helm/v4" { print $2 }' "$here/helm-tools/go.mod")
if [ -z "$version" ]; then
  echo "install-helm-tools: hack/helm-tools/go.mod pins no helm.sh/helm/v4 version" >&2
  exit 1
fi
dir=${PIPIT_TOOLS_CACHE:-$HOME/.cache/pipit-tools}/helm-$version
# kustomize-build is pipit's own source: a change to it is a new build.
sum=$(cat "$here/helm-tools/go.sum" "$here/helm-tools/kustomize-build/main.go" | sha256sum | cut -c1-12)
stamp=$dir/.built-$sum

if [ ! -e "$stamp" ]; then
  mkdir -p "$dir"
  # Test packages may call this at once: one builds, the others wait.
  exec 9>"$dir/.lock"
  flock 9
  if [ ! -e "$stamp" ]; then
    # Built beside the final names and renamed, so that a killed build
    # never leaves a binary that looks installed.
    scratch=$(mktemp -d "$dir/.work.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    (cd "$here/helm-tools" && GOFLAGS=-buildvcs=false "$GO" build -o "$scratch/" helm.sh/helm/v4/cmd/helm ./kustomize-build)
    mv "$scratch/helm" "$scratch/kustomize-build" "$dir/"
    rm -f "$dir"/.built-*
    touch "$stamp"
  fi
fi
echo "$dir"
