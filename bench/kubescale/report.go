package kubescale

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Heading is the docs/benchmarks.md section the benchmark writes.
const Heading = "## Kubernetes controller at scale"

// findingsHeading starts a hand-written part of the section that a new
// run keeps: what the numbers of a run mean is not generated.
const findingsHeading = "### Findings"

// report is one run's results.
type report struct {
	When       time.Time
	Machine    string // "2 CPUs (AMD EPYC)"
	LoadBefore string // /proc/loadavg's first three fields
	LoadAfter  string
	Command    string // what the report cites
	Benchmark  string // the go test command behind it

	Rollouts    int
	Pause       time.Duration
	Bound       time.Duration // how long the benchmark waits for all to succeed
	Controller  string        // which program ran the controller
	Concurrency string        // the controller's --concurrency, as run
	LogLevel    string        // the controller's --log-level
	Phases      map[v1alpha1.Phase]int
	Succeeded   int
	TimedOut    bool

	Install    time.Duration // all created → all installed
	InstallCPU time.Duration
	Updates    time.Duration // time to change every image
	Window     time.Duration // first image change → last Succeeded, or the bound
	CPU        time.Duration // the controller's CPU time in the window
	PeakRSS    int64         // VmHWM: the controller's peak over its life
	WindowRSS  int64         // highest VmRSS sampled in the window

	Requests         float64 // the controller's API requests in the window
	RequestsByMethod map[string]float64
	RequestsByCode   map[string]float64
	PeakRequestRate  float64            // highest rate over one sampling interval
	Reconciles       map[string]float64 // by result
	ReconcileErrors  float64
	MaxQueueDepth    float64
	QueueWait        time.Duration // mean time a rollout waited in the work queue
	WorkTime         time.Duration // mean time of one reconcile

	Delays delays
	Server []resourceLoad
	Logs   logSummary
}

// resourceLoad is what the API server served for one resource in the
// window, to every client of the cluster.
type resourceLoad struct {
	Resource                 string
	Total, Writes, Conflicts float64
}

// serverLoad compares two scrapes of kube-apiserver's /metrics and returns
// the busiest resources.
func serverLoad(before, after metrics, top int) []resourceLoad {
	byResource := map[string]*resourceLoad{}
	count := func(m metrics, sign float64) {
		for _, s := range m["apiserver_request_total"] {
			res := s.labels["resource"]
			if res == "" {
				continue
			}
			if sub := s.labels["subresource"]; sub != "" {
				res += "/" + sub
			}
			l := byResource[res]
			if l == nil {
				l = &resourceLoad{Resource: res}
				byResource[res] = l
			}
			l.Total += sign * s.value
			switch s.labels["verb"] { // the HTTP verbs, and APPLY for server-side apply
			case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY":
				l.Writes += sign * s.value
			}
			if s.labels["code"] == "409" {
				l.Conflicts += sign * s.value
			}
		}
	}
	count(after, 1)
	count(before, -1)
	var out []resourceLoad
	for _, l := range byResource {
		if l.Total > 0 {
			out = append(out, *l)
		}
	}
	slices.SortFunc(out, func(a, b resourceLoad) int {
		if a.Total != b.Total {
			if a.Total > b.Total {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Resource, b.Resource)
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}

// deltaBy is after minus before of a metric summed by one label.
func deltaBy(before, after metrics, name, label string, want map[string]string) map[string]float64 {
	out := after.sumBy(name, label, want)
	for k, v := range before.sumBy(name, label, want) {
		out[k] -= v
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// logSummary counts the controller's JSON log lines by level and its
// warnings and errors by message.
type logSummary struct {
	Lines    int
	ByLevel  map[string]int
	Messages map[string]int // "LEVEL msg: err", names of rollouts replaced
}

var (
	rolloutName = regexp.MustCompile(`app-[0-9]+`)
	digits      = regexp.MustCompile(`[0-9]{4,}`) // resource versions, UIDs' runs
)

// summariseLog reads a log written by slog's JSON handler. ns, the
// benchmark's namespace, is replaced by NS so that equal problems of
// different rollouts count as one message.
func summariseLog(text, ns string) logSummary {
	s := logSummary{ByLevel: map[string]int{}, Messages: map[string]int{}}
	inBlock := false // within lines that are not JSON, such as a stack trace
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s.Lines++
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Err   string `json:"err"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			// A block of such lines counts once, under its first line.
			if !inBlock {
				s.ByLevel["not JSON"]++
				s.Messages["(not JSON) "+truncate(line, 160)]++
			}
			inBlock = true
			continue
		}
		inBlock = false
		s.ByLevel[rec.Level]++
		msg := rec.Level + " " + rec.Msg
		if e := rec.Err + rec.Error; e != "" {
			msg += ": " + e
		}
		if ns != "" {
			msg = strings.ReplaceAll(msg, ns, "NS")
		}
		msg = digits.ReplaceAllString(rolloutName.ReplaceAllString(msg, "app-N"), "N")
		s.Messages[truncate(msg, 240)]++
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// markdown renders the report as the docs/benchmarks.md section.
func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	d := &r.Delays

	p("%s\n\n", Heading)
	p("Measured by `%s` on %s, on a machine with %s; load average before the run %s, after it %s.\n",
		r.Command, r.When.UTC().Format("2006-01-02 15:04 UTC"), r.Machine, r.LoadBefore, r.LoadAfter)
	if r.Benchmark != "" && r.Benchmark != r.Command {
		p("The script runs `%s` with `-kubescale.doc` naming this file.\n", r.Benchmark)
	}
	p("The whole test cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok), the\n")
	p("benchmark and the controller share those CPUs.\n\n")

	p("**What runs.** %d Deployments (1 replica each, one container) and %d Rollouts, one per Deployment, with the\n", r.Rollouts, r.Rollouts)
	p("Gateway API router (pipit creates one HTTPRoute per rollout; no gateway controller runs) and the steps\n")
	p("`setWeight 10, pause %s, setWeight 30, pause %s, setWeight 60, pause %s`, no analysis, `progressDeadline: 30m`.\n", r.Pause, r.Pause, r.Pause)
	p("The controller, %s, runs as its own process (`--namespace`, `--log-level %s`,\n", r.Controller, r.LogLevel)
	p("concurrency %s), with the kubeconfig the test cluster writes. Once every rollout has installed its first\n", r.Concurrency)
	p("version (stable copy, Services, HTTPRoute), the benchmark changes all %d images at once and waits, at most\n", r.Rollouts)
	p("%s, until every rollout is Succeeded. The simulated kubelet (kwok) makes pods Ready as soon as they are\n", r.Bound)
	p("scheduled; the canary and the stable copies each run 1 pod.\n\n")

	if r.TimedOut {
		p("**Not all rollouts finished within %s**: %d of %d Succeeded; the figures below cover what finished.\n\n",
			r.Bound, r.Succeeded, r.Rollouts)
	}

	p("| measure | value |\n|---|---|\n")
	p("| rollouts Succeeded | %d of %d (phases at the end: %s) |\n", r.Succeeded, r.Rollouts, phaseList(r.Phases))
	p("| image change → all Succeeded | %s (the %d image updates took %s) |\n", round(r.Window), r.Rollouts, round(r.Updates))
	p("| controller CPU, image change → all Succeeded | %.1f s, %.2f cores on average |\n", r.CPU.Seconds(), cores(r.CPU, r.Window))
	p("| controller memory | peak RSS %s over its life (VmHWM), highest RSS sampled while the rollouts ran %s |\n", mib(r.PeakRSS), mib(r.WindowRSS))
	p("| controller API requests | %.0f in all, %.1f/s on average, at most %.1f/s over a sampling interval |\n",
		r.Requests, perSecond(r.Requests, r.Window), r.PeakRequestRate)
	p("| step delay (decision): WeightChanged after a pause − due time | %s |\n", qline(summarise(d.decision)))
	p("| step delay (route): weight seen in the HTTPRoute − due time | %s |\n", qline(summarise(d.route)))
	p("| promotion start after the last pause − due time | %s |\n", qline(summarise(d.promote)))
	p("| image change → first weight (canary copy Ready) | %s |\n", qline(summarise(d.firstWeight)))
	p("| promotion start → Promoted (stable copy rolled out) | %s |\n", qline(summarise(d.promotion)))
	p("| image change → Promoted, per rollout | %s |\n", qline(summarise(d.total)))
	p("| install phase: all created → all installed | %s, controller CPU %.1f s |\n", round(r.Install), r.InstallCPU.Seconds())
	p("\n")

	p("What the controller did from the image change to the last Succeeded (its `/metrics`):\n\n")
	p("- requests by method: %s; by status code: %s\n", numList(r.RequestsByMethod), numList(r.RequestsByCode))
	p("- reconciles by result: %s; reconcile errors: %.0f\n", numList(r.Reconciles), r.ReconcileErrors)
	p("- work queue: deepest %.0f rollouts waiting; a rollout waited %s in the queue on average, a reconcile took %s on average\n",
		r.MaxQueueDepth, round(r.QueueWait), round(r.WorkTime))
	p("- log: %d lines (by level: %s)", r.Logs.Lines, intList(r.Logs.ByLevel))
	if len(r.Logs.Messages) > 0 {
		p("; most frequent:\n")
		for _, m := range topMessages(r.Logs.Messages, 5) {
			p("  - %d× `%s`\n", r.Logs.Messages[m], strings.ReplaceAll(m, "`", "'"))
		}
	} else {
		p("\n")
	}
	p("\n")

	if len(r.Server) > 0 {
		p("The API server's view over the same time (`apiserver_request_total`, every client of the cluster:\n")
		p("the controller, kube-controller-manager, the scheduler, kwok and the benchmark's watches):\n\n")
		p("| resource | requests | per second | writes | conflicts (409) |\n|---|---:|---:|---:|---:|\n")
		for _, l := range r.Server {
			p("| %s | %.0f | %.1f | %.0f | %.0f |\n", l.Resource, l.Total, perSecond(l.Total, r.Window), l.Writes, l.Conflicts)
		}
		p("\n")
	}

	p("- **Step delay** is the lateness of a step that was due at a known time: a pause of %s ends, and the next\n", r.Pause)
	p("  weight is due, %s after the previous WeightChanged in `status.history`. The *decision* delay compares the\n", r.Pause)
	p("  next WeightChanged's time in the history (when the engine decided) with that due time; the *route* delay\n")
	p("  compares the moment the benchmark's watch saw the new weight in the HTTPRoute, after the status write\n")
	p("  and the route write. %d rollouts × 2 such steps.\n", r.Rollouts)
	p("- CPU is utime + stime of the controller process (`/proc/PID/stat`), memory VmRSS and VmHWM\n")
	p("  (`/proc/PID/status`); API requests are `rest_client_requests_total` summed over all labels.\n")
	return b.String()
}

func qline(q quantiles) string {
	if q.n == 0 {
		return "none measured"
	}
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s, max %s (%d)", round(q.p50), round(q.p95), round(q.p99), round(q.max), q.n)
}

// round shows a duration to a precision that suits its size.
func round(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}

func perSecond(n float64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return n / wall.Seconds()
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func phaseList(m map[v1alpha1.Phase]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func numList(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func intList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// topMessages are the n most frequent messages, most frequent first.
func topMessages(m map[string]int, n int) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	return keys[:min(n, len(keys))]
}

// updateDoc puts section into the markdown file at path in place of the
// section with the same heading, or at the end when there is none. A
// "### Findings" part of the old section is kept after the new text.
func updateDoc(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out := replaceSection(string(old), section)
	return os.WriteFile(path, []byte(out), 0o644)
}

func replaceSection(doc, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	start, end := -1, len(lines)
	for i, l := range lines {
		t := strings.TrimRight(l, "\n")
		if start < 0 && t == Heading {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(t, "## ") {
			end = i
			break
		}
	}
	if start < 0 {
		return strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	var findings string
	for i := start; i < end; i++ {
		if strings.TrimRight(lines[i], "\n") == findingsHeading {
			findings = strings.TrimRight(strings.Join(lines[i:end], ""), "\n") + "\n"
			break
		}
	}
	var b strings.Builder
	b.WriteString(strings.Join(lines[:start], ""))
	b.WriteString(section)
	if findings != "" {
		b.WriteString("\n" + findings)
	}
	if end < len(lines) {
		b.WriteString("\n" + strings.Join(lines[end:], ""))
	}
	return b.String()
}
