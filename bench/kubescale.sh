#!/usr/bin/env bash
# bench/kubescale.sh — pipit's Kubernetes controller at scale: 500 Rollouts
# progressing at once on the test cluster (internal/testenv/kubecluster),
# the real `pipit controller` binary measured from /proc and its /metrics.
# Prints a table and writes it into the "## Kubernetes controller at scale"
# section of docs/benchmarks.md (a "### Findings" part written by hand is
# kept).
#
#   bash bench/kubescale.sh
#
# Settings (environment): ROLLOUTS (default 500), BOUND (how long to wait
# for every rollout to succeed after the image change, default 45m),
# CONTROLLER_LOG (where the controller's log is kept, default
# /tmp/pipit-kubescale-controller.log). Takes 30 to 60 minutes on two
# shared cores; the control plane's binaries are built the first time
# (make deps), which takes about 15 minutes more.
set -euo pipefail
cd "$(dirname "$0")/.."

ROLLOUTS=${ROLLOUTS:-500}
BOUND=${BOUND:-45m}
CONTROLLER_LOG=${CONTROLLER_LOG:-/tmp/pipit-kubescale-controller.log}

go test -run '^$' -bench Scale500 -benchtime 1x -timeout 2h ./bench/kubescale \
	-kubescale.rollouts "$ROLLOUTS" -kubescale.bound "$BOUND" \
	-kubescale.doc "$PWD/docs/benchmarks.md" -kubescale.command "bash bench/kubescale.sh" \
	-kubescale.log "$CONTROLLER_LOG"
echo "bench/kubescale: the controller's log is in $CONTROLLER_LOG" >&2
