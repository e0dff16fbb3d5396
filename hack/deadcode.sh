#!/usr/bin/env bash
# Fails when a function is unreachable from pipit's programs, unless
# hack/deadcode-allow.txt allows it. It runs deadcode twice: without -test,
# which reports code that only tests call (the review's "wired only from
# tests"), and with -test, which reports code that not even a test calls.
set -euo pipefail
cd "$(dirname "$0")/.."

deadcode=$(GO=${GO:-go} bash hack/install-deadcode.sh)
allow=hack/deadcode-allow.txt
module=$(${GO:-go} list -m)
format='{{range .Funcs}}{{$.Path}}{{"\t"}}{{.Name}}{{"\t"}}{{.Position.File}}:{{.Position.Line}}{{"\n"}}{{end}}'

found=$(mktemp)
trap 'rm -f "$found"' EXIT
"$deadcode" -f "$format" ./... >"$found"
"$deadcode" -test -f "$format" ./... >>"$found"

# An allow-list line is a package (relative to the module), a package
# and everything under it (dir/...), or a package's function
# (pkg.Func, pkg.Type.Method), then "#" and why.
awk -F'\t' -v module="$module/" -v allow="$allow" -v root="$PWD/" '
  BEGIN {
    while ((getline line < allow) > 0) {
      n++
      if (line ~ /^[ \t]*(#|$)/) continue
      split(line, part, "#")
      entry = part[2] == "" ? "" : part[1]
      gsub(/[ \t]/, "", entry)
      if (entry == "") { printf "%s:%d: want PACKAGE[.FUNC] # REASON, got %s\n", allow, n, line; bad = 1; continue }
      allowed[entry] = 1
    }
  }
  {
    pkg = $1; sub("^" module, "", pkg)
    if (pkg in allowed || (pkg "." $2) in allowed) next
    for (entry in allowed) {
      if (entry ~ /\/\.\.\.$/ && (pkg "/") ~ ("^" substr(entry, 1, length(entry) - 3))) next
    }
    file = $3; sub("^" root, "", file)
    key = file "\t" pkg "." $2
    if (!(key in seen)) { seen[key] = 1; printf "%s: unreachable func %s.%s\n", file, pkg, $2; bad = 1 }
  }
  END { exit bad }
' "$found" || {
  echo "deadcode: wire, delete, or allow-list (with a reason, in $allow) each function above" >&2
  exit 1
}
echo "deadcode: no unreachable function outside $allow"
