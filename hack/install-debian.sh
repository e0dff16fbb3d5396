#!/usr/bin/env bash
# Usage: install-debian.sh PACKAGE BINARY
#
# Installs a Debian package the tests need, such as prometheus (a real
# Prometheus server) or systemd (systemd-socket-activate and
# systemd-analyze). Idempotent: does nothing when BINARY exists. Runs as
# root, non-interactively, on a fresh Debian machine (CI). The package's
# own services are kept from starting: tests run their own instances.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: install-debian.sh PACKAGE BINARY" >&2
  exit 2
fi
package=$1 binary=$2

if [ -x "$binary" ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-debian: must run as root to apt-get install $package" >&2
  exit 1
fi

# Test packages run in parallel and may all call this script: one installs,
# the others wait and then find the binary.
exec 9>"/var/lock/pipit-install-$package.lock"
flock 9
if [ -x "$binary" ]; then
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
  "$package"

if [ ! -x "$binary" ]; then
  echo "install-debian: $package is installed but $binary is still missing" >&2
  exit 1
fi
