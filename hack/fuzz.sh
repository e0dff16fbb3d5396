#!/usr/bin/env bash
# hack/fuzz.sh — runs every fuzz target of the module for FUZZTIME each
# (default 10s), as `make fuzz` does in `make test`.
#
# Go 1.26's fuzzing coordinator can report "context deadline exceeded" and
# fail a target at the very end of a duration -fuzztime when a worker is
# still busy as the deadline fires (golang/go#75804, fixed in Go 1.27). A
# real finding always writes its input to testdata/fuzz and says so; a
# failure with only that message and no input written is that race, and
# the target is run once more instead of failing the build.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}

run() { # run PKG TARGET: one fuzzing run, its output shown and kept in $out
	out=$($GO test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" 2>&1) && status=0 || status=$?
	printf '%s\n' "$out"
	return "$status"
}

deadline_race() {
	grep -q 'context deadline exceeded' <<<"$out" && ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' <<<"$out"
}

for pkg in $($GO list ./...); do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	for f in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $f ($FUZZTIME)"
		if run "$pkg" "$f"; then continue; fi
		if deadline_race; then
			echo "fuzz $pkg $f: the fuzzing engine's deadline race (golang/go#75804), no input found; running it again"
			run "$pkg" "$f" && continue
		fi
		exit 1
	done
done
