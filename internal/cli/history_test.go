package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func historyEvents() []v1alpha1.Event {
	at := func(h, m, s int) time.Time { return time.Date(2026, 7, 1, h, m, s, 0, time.UTC) }
	return []v1alpha1.Event{
		{Time: *mtime(at(21, 55, 0)), Type: v1alpha1.EventNormal, Reason: "Started", Phase: v1alpha1.PhaseProgressing,
			Message: "Rollout of canary v2 started by ann"},
		{Time: *mtime(at(22, 5, 0)), Type: v1alpha1.EventNormal, Reason: "WeightChanged", Phase: v1alpha1.PhaseProgressing,
			Weight: 5000, Message: "Routed 5% of traffic to canary v2 (step 1/6: setWeight 5%)"},
		{Time: *mtime(at(23, 59, 59)), Type: v1alpha1.EventNormal, Reason: "WeightChanged", Phase: v1alpha1.PhaseProgressing,
			Weight: 25000, Message: "Routed 25% of traffic to canary v2 (step 3/6: setWeight 25%)"},
		{Time: *mtime(at(24, 1, 30)), Type: v1alpha1.EventWarning, Reason: "RolledBack", Phase: v1alpha1.PhaseRolledBack,
			Message: "Canary v2 rolled back: error-rate 7.2% > max 1%"},
	}
}

func TestTimeline(t *testing.T) {
	want := `Wednesday 2026-07-01
21:55:00  Progressing   0%  Rollout of canary v2 started by ann
22:05:00  Progressing   5%  Routed 5% of traffic to canary v2 (step 1/6: setWeight 5%)
23:59:59  Progressing  25%  Routed 25% of traffic to canary v2 (step 3/6: setWeight 25%)
Thursday 2026-07-02
00:01:30  RolledBack    0%  WARNING Canary v2 rolled back: error-rate 7.2% > max 1%
`
	if got := timeline(historyEvents(), time.UTC); got != want {
		t.Fatalf("timeline:\n%s\nwant:\n%s", got, want)
	}

	// In another zone the same events fall on other days.
	got := timeline(historyEvents(), time.FixedZone("UTC-3", -3*3600))
	if !strings.HasPrefix(got, "Wednesday 2026-07-01\n18:55:00  Progressing") || strings.Count(got, "2026-07-0") != 1 ||
		!strings.Contains(got, "21:01:30  RolledBack ") {
		t.Fatalf("timeline in UTC-3:\n%s", got)
	}
	if got := timeline(nil, time.UTC); got != "No events.\n" {
		t.Fatalf("empty timeline %q", got)
	}
}

func TestHistoryCommand(t *testing.T) {
	f := newFakeBackend()
	f.events["web"] = historyEvents()
	dir := startDaemon(t, f)

	code, out, errOut := run(t, "history", "web", "--state-dir", dir)
	if code != ExitOK || out != timeline(historyEvents(), time.Local) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = run(t, "history", "web", "--limit", "2", "-o", "json", "--state-dir", dir)
	var evs []v1alpha1.Event
	if err := json.Unmarshal([]byte(out), &evs); code != ExitOK || err != nil || len(evs) != 2 || evs[1].Reason != "RolledBack" {
		t.Fatalf("exit %d, json (%v):\n%s", code, err, out)
	}

	code, out, _ = run(t, "history", "api", "-o", "json", "--state-dir", dir)
	if code != ExitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("no events: exit %d, %q", code, out)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"history"}, ExitBadInput, "accepts 1 arg"},
		{[]string{"history", "web", "--limit", "-1"}, ExitBadInput, "--limit"},
		{[]string{"history", "web", "-o", "xml"}, ExitBadInput, "--output"},
		{[]string{"history", "nope"}, ExitFailed, "not found"},
	} {
		if code, _, errOut := run(t, append(tt.args, "--state-dir", dir)...); code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}
