// Package kubescale measures pipit's Kubernetes controller at scale: many
// Rollouts progressing at once on the test cluster (internal/testenv/
// kubecluster), with the real `pipit controller` binary as a separate
// process so that its CPU time and memory can be read from /proc.
//
// The measurement is a benchmark, so a plain `go test` runs only the unit
// tests of the helpers here:
//
//	go test -run '^$' -bench Scale500 -benchtime 1x -timeout 2h ./bench/kubescale
//
// bench/kubescale.sh runs it and writes the results into
// docs/benchmarks.md.
package kubescale
