package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpRefusesBadRetention: a retention flag that cannot be read, or is
// negative, is refused naming the flag, before any state is made.
func TestUpRefusesBadRetention(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--retention", "-1h"}, `invalid argument "-1h" for "--retention" flag: "-1h" is negative`},
		{[]string{"--retention", "a month"}, `"--retention" flag: "a month": want a duration`},
		{[]string{"--retention", "1.5d"}, `"--retention" flag: "1.5d": want whole days`},
		{[]string{"--retention-keep", "-5"}, "--retention-keep -5: want 0"},
		{[]string{"--retention-keep", "lots"}, `invalid argument "lots" for "--retention-keep" flag`},
	} {
		args := append([]string{"up", "-f", file, "--state-dir", state, "--api", "127.0.0.1:0"}, tc.flags...)
		code, _, errOut := run(t, args...)
		if code != ExitBadInput || !strings.Contains(errOut, tc.want) {
			t.Errorf("pipit up %s: exit %d, %q; want %d naming %q", strings.Join(tc.flags, " "), code, errOut, ExitBadInput, tc.want)
		}
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused pipit up made its state directory: %v", err)
	}
}

func TestAgeValue(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "36h": 36 * time.Hour, "0": 0, "0d": 0, "90m": 90 * time.Minute} {
		var a ageValue
		if err := a.Set(in); err != nil || time.Duration(a) != want {
			t.Errorf("Set(%q) = %s, %v; want %s", in, time.Duration(a), err, want)
		}
	}
	for d, want := range map[time.Duration]string{30 * 24 * time.Hour: "30d", 36 * time.Hour: "36h0m0s", 0: "0s"} {
		if got := (*ageValue)(&d).String(); got != want {
			t.Errorf("String of %s = %q, want %q", d, got, want)
		}
	}
}
