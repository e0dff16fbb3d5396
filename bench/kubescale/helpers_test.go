package kubescale

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestParseStat(t *testing.T) {
	// The command name holds a space and a ')': fields are counted from
	// the last ')'. utime 250 and stime 75 ticks.
	stat := "4242 (pipit (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 2000000 3000\n"
	got, err := parseStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Errorf("parseStat = %s, want %s", got, want)
	}
	if _, err := parseStat([]byte("4242 (pipit) S 1 2")); err == nil {
		t.Error("parseStat accepted a line without utime and stime")
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tpipit\nVmPeak:\t  900000 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40960 kB\nThreads:\t12\n"
	rss, hwm, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 40960*1024 || hwm != 81920*1024 {
		t.Errorf("parseStatus = rss %d, hwm %d; want %d, %d", rss, hwm, 40960*1024, 81920*1024)
	}
	if _, _, err := parseStatus([]byte("Name:\tpipit\nVmRSS:\t1 kB\n")); err == nil {
		t.Error("parseStatus accepted a status without VmHWM")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP rest_client_requests_total Number of HTTP requests.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 120
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PUT"} 3
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PUT"} 40
workqueue_depth{controller="rollout",name="rollout"} 7 1700000000000
odd{msg="a \"quoted\", comma\\ and } brace"} +Inf
plain 2.5e3
`
	m, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.sum("rest_client_requests_total", nil); got != 163 {
		t.Errorf("sum of requests = %v, want 163", got)
	}
	byMethod := m.sumBy("rest_client_requests_total", "method", nil)
	if byMethod["GET"] != 120 || byMethod["PUT"] != 43 {
		t.Errorf("requests by method = %v", byMethod)
	}
	if got := m.sum("workqueue_depth", map[string]string{"name": "rollout"}); got != 7 {
		t.Errorf("workqueue depth = %v, want 7", got)
	}
	if got := m["odd"][0].labels["msg"]; got != `a "quoted", comma\ and } brace` {
		t.Errorf("escaped label value = %q", got)
	}
	if got := m.sum("plain", nil); got != 2500 {
		t.Errorf("plain = %v, want 2500", got)
	}
	if _, err := parseMetrics("broken{code=\"200\" 1\n"); err == nil {
		t.Error("parseMetrics accepted an unterminated label set")
	}
}

func TestDeltaAndServerLoad(t *testing.T) {
	before, err := parseMetrics(`
apiserver_request_total{code="200",resource="rollouts",subresource="status",verb="PUT"} 10
apiserver_request_total{code="200",resource="pods",subresource="",verb="LIST"} 5
rest_client_requests_total{code="200",method="GET"} 100
`)
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseMetrics(`
apiserver_request_total{code="200",resource="rollouts",subresource="status",verb="PUT"} 60
apiserver_request_total{code="409",resource="rollouts",subresource="status",verb="PUT"} 4
apiserver_request_total{code="200",resource="rollouts",subresource="",verb="GET"} 70
apiserver_request_total{code="200",resource="pods",subresource="",verb="LIST"} 5
rest_client_requests_total{code="200",method="GET"} 150
rest_client_requests_total{code="409",method="PUT"} 2
`)
	if err != nil {
		t.Fatal(err)
	}
	got := serverLoad(before, after, 5)
	want := []resourceLoad{
		{Resource: "rollouts", Total: 70},
		{Resource: "rollouts/status", Total: 54, Writes: 54, Conflicts: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("serverLoad = %+v, want %+v (pods had no requests in between)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("serverLoad[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	codes := deltaBy(before, after, "rest_client_requests_total", "code", nil)
	if len(codes) != 2 || codes["200"] != 50 || codes["409"] != 2 {
		t.Errorf("deltaBy code = %v, want 200:50 409:2", codes)
	}
}

// history builds a status history from reason/time-offset/weight triples.
func history(t0 time.Time, events ...any) []v1alpha1.Event {
	var out []v1alpha1.Event
	for i := 0; i < len(events); i += 3 {
		e := v1alpha1.Event{Reason: events[i].(string), Weight: v1alpha1.PercentOf(events[i+2].(float64))}
		e.Time = metav1.NewMicroTime(t0.Add(events[i+1].(time.Duration)))
		out = append(out, e)
	}
	return out
}

func TestDelays(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	var d delays
	d.add(timeline{
		imageChanged: t0,
		history: history(t0,
			"Installed", -time.Hour, 0.0, // an earlier rollout's events are left out
			"WeightChanged", -50*time.Minute, 50.0,
			"Started", 100*ms, 0.0,
			"CanaryReady", 2*time.Second, 0.0,
			"WeightChanged", 2*time.Second, 10.0,
			"PauseEnded", 7300*ms, 10.0,
			"WeightChanged", 7300*ms, 30.0, // due at 7s: 300ms late
			"WeightChanged", 13*time.Second, 60.0, // due at 12.3s: 700ms late
			"Promoting", 18500*ms, 100.0, // due at 18s: 500ms late
			"Promoted", 21*time.Second, 0.0,
		),
		routeSeen: map[v1alpha1.Percent]time.Time{
			v1alpha1.PercentOf(10): t0.Add(2100 * ms),
			v1alpha1.PercentOf(30): t0.Add(7500 * ms), // 500ms after due
			v1alpha1.PercentOf(60): t0.Add(12800 * ms),
		},
	}, 5*time.Second)
	// A rollout still soaking at 30%: counted as incomplete, its one
	// finished step still measured.
	d.add(timeline{
		imageChanged: t0,
		history: history(t0,
			"Started", 0*ms, 0.0,
			"WeightChanged", time.Second, 10.0,
			"WeightChanged", 6100*ms, 30.0,
		),
	}, 5*time.Second)
	d.add(timeline{imageChanged: t0}, 5*time.Second) // never started

	check := func(name string, got []time.Duration, want ...time.Duration) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
			return
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s = %v, want %v", name, got, want)
				return
			}
		}
	}
	check("decision", d.decision, 300*ms, 700*ms, 100*ms)
	check("route", d.route, 500*ms, 500*ms)
	check("promote", d.promote, 500*ms)
	check("firstWeight", d.firstWeight, 2*time.Second, time.Second)
	check("promotion", d.promotion, 2500*ms)
	check("total", d.total, 21*time.Second)
	if d.incomplete != 2 {
		t.Errorf("incomplete = %d, want 2", d.incomplete)
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	q := summarise(ds)
	if q.n != 100 || q.p50 != 50*time.Millisecond || q.p95 != 95*time.Millisecond ||
		q.p99 != 99*time.Millisecond || q.max != 100*time.Millisecond {
		t.Errorf("summarise(1..100ms) = %+v", q)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("summarise sorted its argument in place")
	}
	if q := summarise(nil); q.n != 0 {
		t.Errorf("summarise(nil) = %+v", q)
	}
	if got := qline(summarise(nil)); got != "none measured" {
		t.Errorf("qline of nothing = %q", got)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\n## Engine\n\nengine text\n"
	first := replaceSection(doc, Heading+"\n\nrun 1\n")
	if want := doc + "\n" + Heading + "\n\nrun 1\n"; first != want {
		t.Fatalf("appending:\n%s\nwant:\n%s", first, want)
	}
	// Findings written by hand and a section after it survive a new run.
	edited := first + "\n" + findingsHeading + "\n\nby hand\n\n## Later\n\nlater text\n"
	second := replaceSection(edited, Heading+"\n\nrun 2\n")
	want := doc + "\n" + Heading + "\n\nrun 2\n\n" + findingsHeading + "\n\nby hand\n\n## Later\n\nlater text\n"
	if second != want {
		t.Errorf("replacing:\n%s\nwant:\n%s", second, want)
	}
	if strings.Contains(second, "run 1") {
		t.Error("the old run's text is still there")
	}
}

func TestSummariseLog(t *testing.T) {
	log := `{"time":"t","level":"ERROR","msg":"Reconciler error","err":"rollout ns-abc/app-001: writing status: conflict 123456"}
{"time":"t","level":"ERROR","msg":"Reconciler error","err":"rollout ns-abc/app-377: writing status: conflict 999999"}
{"time":"t","level":"WARN","msg":"slow"}
[controller-runtime] log.SetLogger(...) was never called; logs will not be displayed.
Detected at:
	>  goroutine 160 [running]:
{"time":"t","level":"WARN","msg":"slow"}
panic: something
`
	s := summariseLog(log, "ns-abc")
	if s.Lines != 8 || s.ByLevel["ERROR"] != 2 || s.ByLevel["WARN"] != 2 || s.ByLevel["not JSON"] != 2 {
		t.Errorf("summariseLog counts = %d lines, %v", s.Lines, s.ByLevel)
	}
	top := topMessages(s.Messages, 1)
	want := "ERROR Reconciler error: rollout NS/app-N: writing status: conflict N"
	if len(top) != 1 || top[0] != want || s.Messages[want] != 2 {
		t.Errorf("top message = %q (%v), want %q twice", top, s.Messages, want)
	}
	if n := s.Messages["(not JSON) [controller-runtime] log.SetLogger(...) was never called; logs will not be displayed."]; n != 1 {
		t.Errorf("a stack trace counted %d times under its first line, want once: %v", n, s.Messages)
	}
}

func TestMarkdownNamesTheFigures(t *testing.T) {
	r := &report{
		When: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), Machine: "2 CPUs (test)", Command: "cmd",
		Rollouts: 3, Pause: 5 * time.Second, Bound: time.Minute, Concurrency: "8",
		Phases: map[v1alpha1.Phase]int{v1alpha1.PhaseSucceeded: 2, v1alpha1.PhaseProgressing: 1}, Succeeded: 2, TimedOut: true,
		Window: 40 * time.Second, CPU: 10 * time.Second, PeakRSS: 64 << 20, Requests: 400,
		Delays: delays{decision: []time.Duration{time.Second, 2 * time.Second}},
	}
	md := r.markdown()
	for _, want := range []string{
		Heading, "`cmd`", "2 CPUs (test)", "2 of 3 Succeeded", "0.25 cores", "64 MiB", "10.0/s",
		"p50 1s, p95 2s, p99 2s, max 2s (2)", "Progressing 1, Succeeded 2",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}
