package stats

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

// rscript is Debian's R front end, from r-base-core; the tests install it
// when it is missing.
const rscript = "/usr/bin/Rscript"

// rTimeout bounds one run of R over a table of cases (it starts in well
// under a second).
const rTimeout = 2 * time.Minute

// askR runs testdata/rref.R in mode on the given case lines, and returns R's
// numbers for each case, one row per line.
func askR(t *testing.T, mode string, cases []string) [][]float64 {
	t.Helper()
	tools.EnsureDebian(t, "r-base-core", rscript)
	in := filepath.Join(t.TempDir(), "cases")
	if err := os.WriteFile(in, []byte(strings.Join(cases, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rscript, "testdata/rref.R", mode, in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Rscript rref.R %s: %v\n%s", mode, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("R answered %d lines for %d cases:\n%s", len(lines), len(cases), out)
	}
	rows := make([][]float64, len(lines))
	for i, line := range lines {
		for _, f := range strings.Fields(line) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("R's line %d, %q: %v", i+1, line, err)
			}
			rows[i] = append(rows[i], v)
		}
	}
	return rows
}

// sameTo4Digits reports whether got equals R's want to 4 significant
// digits: a relative difference under 5e-5, both NaN, or both within 1e-12
// of zero (an interval's end that is zero in exact arithmetic).
func sameTo4Digits(got, want float64) bool {
	switch {
	case math.IsNaN(got) || math.IsNaN(want):
		return math.IsNaN(got) && math.IsNaN(want)
	case got == want:
		return true
	}
	return math.Abs(got-want) <= 5e-5*math.Max(math.Abs(got), math.Abs(want)) ||
		math.Abs(got) < 1e-12 && math.Abs(want) < 1e-12
}

// compareToR fails the test for each of got's numbers that differs from R's
// row at the same place; names name the numbers.
func compareToR(t *testing.T, names []string, got, want []float64) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("R gave %d numbers %v, want %d (%v)", len(want), want, len(got), names)
	}
	for i, name := range names {
		if !sameTo4Digits(got[i], want[i]) {
			t.Errorf("%s = %.10g, R says %.10g", name, got[i], want[i])
		}
	}
}
