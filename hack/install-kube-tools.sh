#!/usr/bin/env bash
# Installs what the Kubernetes tests run as a real control plane, and prints
# the directory holding the binaries:
#   - etcd from Debian's etcd-server package (its service kept from starting:
#     tests run their own etcd on a free loopback port);
#   - kube-apiserver, kube-controller-manager and kube-scheduler built from
#     the pinned module in hack/kube-tools;
#   - kwok, the simulated kubelet, with the stage files shipped in its module;
#   - the Gateway API (standard channel) and Istio CRD manifests.
# Everything lands in a cache outside the work tree, keyed by version, so the
# ~15-minute cold build happens once per machine. Idempotent: what exists is
# skipped. Layout of $PIPIT_TOOLS_CACHE/k8s-<version>/ (the Go test helper
# internal/testenv/kubecluster reads it):
#   bin/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kwok}
#   kwok/stages.yaml
#   crds/gateway-api/*.yaml, crds/istio/*.yaml
set -euo pipefail

k8s_version=v1.37.2
kwok_version=v0.8.0
gateway_api_version=v1.6.3
istio_api_version=v1.32.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${PIPIT_TOOLS_CACHE:-$HOME/.cache/pipit-tools}/k8s-$k8s_version
bin=$cache/bin

log() { echo "install-kube-tools: $*" >&2; }

complete() {
  local f
  for f in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    [ -x "$bin/$f" ] || return 1
  done
  [ -s "$cache/kwok/stages.yaml" ] &&
    [ -s "$cache/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml" ] &&
    [ -s "$cache/crds/istio/customresourcedefinitions.gen.yaml" ]
}

if complete; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin" "$cache/kwok" "$cache/crds"

# Test packages run in parallel and may all call this script: one builds,
# the others wait and then find everything in place.
exec 9>"$cache/.lock"
flock 9
if complete; then
  echo "$bin"
  exit 0
fi

export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
scratch=$(mktemp -d "$cache/.work.XXXXXX")
created_policy=0
policy=/usr/sbin/policy-rc.d
cleanup() {
  rm -rf "$scratch"
  if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT

install_etcd() {
  if [ ! -x /usr/bin/etcd ]; then
    if [ "$(id -u)" -ne 0 ]; then
      log "must run as root to apt-get install etcd-server"
      exit 1
    fi
    log "installing etcd-server"
    # policy-rc.d answering 101 tells invoke-rc.d and deb-systemd-invoke not
    # to start the package's service. Only ours is removed afterwards.
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod 0755 "$policy"
      created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      etcd-server >&2
  fi
  ln -sfn /usr/bin/etcd "$bin/etcd"
}

# Binaries are built into the scratch directory and moved into place, so an
# interrupted build never leaves a truncated binary that looks installed.
build_control_plane() {
  local missing=() c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$bin/$c" ] || missing+=("k8s.io/kubernetes/cmd/$c")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "building ${missing[*]##*/} at $k8s_version (a cold build takes about 15 minutes)"
  (cd "$here/kube-tools" && go build -trimpath -o "$scratch/" "${missing[@]}")
  for c in "${missing[@]}"; do
    mv "$scratch/${c##*/}" "$bin/"
  done
}

build_kwok() {
  [ -x "$bin/kwok" ] && return 0
  log "building kwok $kwok_version"
  GOBIN=$scratch go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
  mv "$scratch/kwok" "$bin/"
}

# module_dir prints where the module cache holds module@version.
module_dir() {
  (cd "$scratch" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
}

# The stages make kwok act as a kubelet that initialises its nodes, keeps
# their status fresh and turns scheduled pods Ready at once.
copy_kwok_stages() {
  [ -s "$cache/kwok/stages.yaml" ] && return 0
  local dir out=$scratch/stages.yaml f
  dir=$(module_dir "sigs.k8s.io/kwok@$kwok_version")
  : >"$out"
  for f in "$dir"/kustomize/stage/node/fast/*.yaml \
    "$dir"/kustomize/stage/node/heartbeat/*.yaml \
    "$dir"/kustomize/stage/pod/fast/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    printf -- '---\n' >>"$out"
    cat "$f" >>"$out"
  done
  mv "$out" "$cache/kwok/stages.yaml"
}

copy_crds() {
  local dir
  if [ ! -s "$cache/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml" ]; then
    dir=$(module_dir "sigs.k8s.io/gateway-api@$gateway_api_version")
    rm -rf "$cache/crds/gateway-api" "$scratch/gateway-api"
    mkdir -p "$scratch/gateway-api"
    cp "$dir"/config/crd/standard/*.yaml "$scratch/gateway-api/"
    chmod u+w "$scratch/gateway-api"/*.yaml
    mv "$scratch/gateway-api" "$cache/crds/gateway-api"
  fi
  if [ ! -s "$cache/crds/istio/customresourcedefinitions.gen.yaml" ]; then
    dir=$(module_dir "istio.io/api@$istio_api_version")
    rm -rf "$cache/crds/istio" "$scratch/istio"
    mkdir -p "$scratch/istio"
    cp "$dir/kubernetes/customresourcedefinitions.gen.yaml" "$scratch/istio/"
    chmod u+w "$scratch/istio"/*.yaml
    mv "$scratch/istio" "$cache/crds/istio"
  fi
}

install_etcd
copy_kwok_stages
copy_crds
build_kwok
build_control_plane

if ! complete; then
  log "incomplete after install; see the messages above"
  exit 1
fi
log "ready in $bin"
echo "$bin"
