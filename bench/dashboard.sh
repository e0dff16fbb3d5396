#!/usr/bin/env bash
# bench/dashboard.sh — does an open dashboard slow the data plane? The
# daemon's CPU per proxied request with no dashboard open and with ten
# (ten event streams, GET /v1/rollouts/NAME/stream, as ten open rollout
# pages hold), in alternating rounds, while a canary waits at 5% with a
# check every second (so every stream sends the rollout each second).
#
#   bash bench/dashboard.sh
#
# Settings (environment): DURATION (seconds per measurement, default 10),
# ROUNDS (default 6: none, ten, none, ten, ...), STREAMS (10),
# CONNECTIONS (32). Prints a table and the ratio of the medians.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-6}
STREAMS=${STREAMS:-10}
CONNECTIONS=${CONNECTIONS:-32}

log() { echo "bench/dashboard: $*" >&2; }
command -v wrk >/dev/null || { log "needs wrk (apt-get install wrk)"; exit 1; }

work=$(mktemp -d)
pids=()
streams=()
cleanup() {
	for pid in "${streams[@]}" "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/pipit" ./cmd/pipit
export PIPIT_STATE_DIR=$work/state
p=$((20000 + RANDOM % 20000))
stable=127.0.0.1:$p canary=127.0.0.1:$((p + 1)) proxy=127.0.0.1:$((p + 2)) api=127.0.0.1:$((p + 3))
"$work/pipit" sample-app --listen "$stable" --version v1 >/dev/null 2>&1 & pids+=($!)
"$work/pipit" sample-app --listen "$canary" --version v2 >/dev/null 2>&1 & pids+=($!)
cat >"$work/web.yaml" <<YAML
apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: $proxy
    stable: {url: "http://$stable", version: v1}
  strategy:
    steps:
    - setWeight: 5
    - setWeight: 50
  decision: manual
  analysis:
    interval: 1s
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 90}
YAML
"$work/pipit" up -f "$work/web.yaml" --api "$api" --log-level error >/dev/null 2>&1 & daemon=$!
pids+=("$daemon")
for _ in $(seq 100); do [ -s "$PIPIT_STATE_DIR/token" ] && curl -sf "http://$api/healthz" >/dev/null && break; sleep 0.1; done
"$work/pipit" deploy web --canary "http://$canary" --version v2 >/dev/null
token=$(cat "$PIPIT_STATE_DIR/token")

# cpu_ticks is the daemon's user and system time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)

# measure prints the daemon's CPU in µs per request over one wrk run.
measure() {
	local before after n
	before=$(cpu_ticks)
	n=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://$proxy/" | awk '/requests in/ {print $1}')
	after=$(cpu_ticks)
	awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f %d\n", t / hz * 1e6 / n, n}'
}

open_streams() {
	for _ in $(seq "$STREAMS"); do
		curl -sN -H "Authorization: Bearer $token" "http://$api/v1/rollouts/web/stream" >/dev/null & streams+=($!)
	done
	sleep 2
}
close_streams() {
	for pid in "${streams[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait "${streams[@]}" 2>/dev/null || true
	streams=()
}

wrk -t2 -c"$CONNECTIONS" -d2s "http://$proxy/" >/dev/null # warm-up
none=() ten=()
echo "| round | dashboards | requests | daemon CPU (µs/request) |"
echo "| ---: | ---: | ---: | ---: |"
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then
		read -r us n < <(measure); none+=("$us"); echo "| $r | 0 | $n | $us |"
	else
		open_streams
		read -r us n < <(measure); ten+=("$us"); echo "| $r | $STREAMS | $n | $us |"
		close_streams
	fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m0=$(median "${none[@]}") m10=$(median "${ten[@]}")
echo
echo "median µs/request: none $m0, $STREAMS dashboards $m10; ratio $(awk -v a="$m10" -v b="$m0" 'BEGIN {printf "%.3f", a / b}')"
