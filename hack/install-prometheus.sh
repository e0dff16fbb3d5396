#!/usr/bin/env bash
# Installs Debian's prometheus package for the tests that query a real
# Prometheus. Idempotent: does nothing when /usr/bin/prometheus exists.
# Runs as root, non-interactively, on a fresh Debian machine (CI). The
# package's own service is kept from starting: tests run their own instance
# on a free loopback port.
set -euo pipefail

if [ -x /usr/bin/prometheus ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-prometheus: must run as root to apt-get install prometheus" >&2
  exit 1
fi

# Test packages run in parallel and may all call this script: one installs,
# the others wait and then find the binary.
exec 9>/var/lock/pipit-install-prometheus.lock
flock 9
if [ -x /usr/bin/prometheus ]; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive

# policy-rc.d answering 101 tells invoke-rc.d and deb-systemd-invoke not to
# start services during the install. Only ours is removed afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT

apt-get update -q
apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  prometheus

/usr/bin/prometheus --version
