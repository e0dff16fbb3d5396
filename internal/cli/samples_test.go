package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

func webSamples() []controlapi.Sample {
	at := func(m int) time.Time { return time.Date(2026, 7, 1, 12, m, 0, 0, time.UTC) }
	return []controlapi.Sample{
		{At: at(0), MetricResult: v1alpha1.MetricResult{Name: "request-success-rate", Canary: fptr(99.75), Stable: fptr(99.9), Verdict: v1alpha1.VerdictSuccessful,
			Message: "request-success-rate 99.75% within min 99%"}},
		{At: at(0), MetricResult: v1alpha1.MetricResult{Name: "latency-p99", Verdict: v1alpha1.VerdictNoData, DryRun: true, Message: "no requests"}},
		{At: at(1), MetricResult: v1alpha1.MetricResult{Name: "request-success-rate", Canary: fptr(92.5), Stable: fptr(99.9), Verdict: v1alpha1.VerdictFailed,
			Message: "request-success-rate 92.5% < min 99%"}},
	}
}

func TestSamplesTable(t *testing.T) {
	got := samplesTable(webSamples(), metricUnits(webView(time.Now()).Metrics), time.UTC)
	want := `TIME                 METRIC                CANARY  STABLE  VERDICT           MESSAGE
2026-07-01 12:00:00  request-success-rate  99.75%  99.9%   Successful        request-success-rate 99.75% within min 99%
2026-07-01 12:00:00  latency-p99           -       -       NoData (dry run)  no requests
2026-07-01 12:01:00  request-success-rate  92.5%   99.9%   Failed            request-success-rate 92.5% < min 99%
`
	if got != want {
		t.Errorf("samples table:\n%s\nwant:\n%s", got, want)
	}
	if got := samplesTable(nil, nil, time.UTC); got != "No samples.\n" {
		t.Errorf("no samples: %q", got)
	}
}

// TestSamplesCommand: pipit samples asks the daemon for the metric and
// time given, prints a table or JSON, and refuses what it cannot read
// (exit 2) before it asks; with --kube it says samples are not kept there.
func TestSamplesCommand(t *testing.T) {
	f := newFakeBackend()
	f.samples["web"] = webSamples()
	dir := startDaemon(t, f)

	code, out, errOut := run(t, "samples", "web", "--state-dir", dir)
	if code != ExitOK || strings.Count(out, "\n") != 4 || !strings.Contains(out, "NoData (dry run)") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = run(t, "samples", "web", "--metric", "request-success-rate", "--since", "2026-07-01T14:00:30+02:00", "-o", "json", "--state-dir", dir)
	var got []controlapi.Sample
	if err := json.Unmarshal([]byte(out), &got); code != ExitOK || err != nil || len(got) != 1 || got[0].Verdict != v1alpha1.VerdictFailed {
		t.Fatalf("one metric since 12:00:30Z: exit %d, json (%v):\n%s", code, err, out)
	}
	// An age counts back from now: every sample of 2026 is within 10000 days.
	if code, out, _ := run(t, "samples", "web", "--since", "10000d", "-o", "json", "--state-dir", dir); code != ExitOK || strings.Count(out, `"at"`) != 3 {
		t.Fatalf("--since 10000d: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "samples", "web", "--since", "1h", "-o", "json", "--state-dir", dir); code != ExitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("--since 1h, after every sample: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "samples", "api", "-o", "json", "--state-dir", dir); code != ExitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("no samples: exit %d, %q", code, out)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"samples", "--state-dir", dir}, ExitBadInput, "accepts 1 arg"},
		{[]string{"samples", "web", "--since", "last week", "--state-dir", dir}, ExitBadInput, `--since "last week": want an RFC 3339 time`},
		{[]string{"samples", "web", "-o", "xml", "--state-dir", dir}, ExitBadInput, "--output"},
		{[]string{"samples", "nope", "--state-dir", dir}, ExitFailed, "not found"},
	} {
		if code, _, errOut := run(t, tt.args...); code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}
