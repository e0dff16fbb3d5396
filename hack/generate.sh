#!/usr/bin/env bash
# Regenerates what controller-gen derives from the API types in
# api/v1alpha1: the deepcopy methods (zz_generated.deepcopy.go) and the
# CustomResourceDefinitions in deploy/kubernetes/crd/, and their copies
# in the Helm chart (deploy/helm/pipit/files/crd/). Run it after
# changing a type or a +kubebuilder marker, and commit the result:
#   bash hack/generate.sh
# With --check it generates into a scratch copy instead and fails when the
# committed files differ (make test runs it, so they never drift):
#   bash hack/generate.sh --check
# controller-gen runs through `go run pkg@version`, so it needs no entry in
# go.mod; the first run downloads and builds it (under a minute).
# allowDangerousTypes admits the float64 fields (thresholds, scores), which
# are decimal numbers in the schema.
set -euo pipefail

controller_tools_version=v0.23.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

controller_gen() {
	go run "sigs.k8s.io/controller-tools/cmd/controller-gen@$controller_tools_version" "$@"
}

generate() {
	controller_gen object paths=./api/...
	controller_gen crd:allowDangerousTypes=true paths=./api/... output:crd:artifacts:config=deploy/kubernetes/crd
	# Helm reads no file outside the chart.
	rm -rf deploy/helm/pipit/files/crd
	mkdir -p deploy/helm/pipit/files/crd
	cp deploy/kubernetes/crd/*.yaml deploy/helm/pipit/files/crd/
}

if [ "${1:-}" != "--check" ]; then
	generate
	exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp go.mod go.sum "$scratch"/
cp -r api "$scratch"/
mkdir -p "$scratch/deploy/kubernetes/crd"
(cd "$scratch" && generate)
if ! diff -u api/v1alpha1/zz_generated.deepcopy.go "$scratch/api/v1alpha1/zz_generated.deepcopy.go" ||
	! diff -ru deploy/kubernetes/crd "$scratch/deploy/kubernetes/crd" ||
	! diff -ru deploy/helm/pipit/files/crd "$scratch/deploy/helm/pipit/files/crd"; then
	echo "generated files are out of date: run bash hack/generate.sh and commit the result" >&2
	exit 1
fi
echo "generated files are up to date"
