package convert

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// hookTypes are the webhook types Flagger and pipit share, with the same
// meaning.
var hookTypes = map[string]bool{
	"confirm-rollout": true, "pre-rollout": true, "rollout": true, "confirm-traffic-increase": true,
	"confirm-promotion": true, "post-rollout": true, "rollback": true, "event": true,
}

// flaggerWebhook converts one webhook of a Canary. A load tester's `cmd`
// that runs hey becomes the built-in load test; other load tester
// commands stay HTTP hooks to the load tester, which runs them.
func (c *converter) flaggerWebhook(w field, interval *metav1.Duration) (v1alpha1.WebhookSpec, bool) {
	h := v1alpha1.WebhookSpec{Name: w.get("name").str(), Type: v1alpha1.HookRollout, URL: w.get("url").str()}
	if t := w.get("type"); t.ok() {
		if !hookTypes[t.str()] {
			t.noteHere(fmt.Sprintf("%q is not a Flagger webhook type; the webhook is not carried over", t.str()))
			w.whole()
			return h, false
		}
		h.Type = v1alpha1.HookType(t.str())
	}
	h.Timeout = w.get("timeout").duration(false)
	if n, ok := w.get("retries").int(); ok {
		retries := int32(n)
		h.Retries = &retries
	}
	w.drop("muteAlert", "pipit notifies every failed hook; spec.notifications choose which events are sent")
	meta := w.get("metadata")
	var md map[string]string
	if !meta.decode(&md) {
		return h, true
	}
	cmd := strings.TrimSpace(md["cmd"])
	words := shellWords(cmd)
	heyCmd := len(words) > 0 && words[0] == "hey" && (md["type"] == "" || md["type"] == "cmd")
	if !heyCmd || (h.Type != v1alpha1.HookRollout && h.Type != v1alpha1.HookPreRollout) {
		h.Metadata = md
		if cmd != "" {
			meta.noteHere("kept as an HTTP hook to Flagger's load tester, which runs the command; pipit's payload carries this metadata as Flagger's does, but its other fields differ (docs/hooks.md)")
		}
		return h, true
	}
	if h.Type != v1alpha1.HookRollout {
		interval = nil // a pre-rollout hook runs once: its length is its own
	}
	lt, notes := heyLoadTest(words[1:], interval)
	for _, n := range notes {
		meta.noteHere(n)
	}
	for k := range md {
		if k != "cmd" && k != "type" {
			meta.noteHere(fmt.Sprintf("%s: the load tester's option; the built-in load test has none", k))
		}
	}
	h.URL, h.LoadTest = "", lt
	return h, true
}

// heyLoadTest reads the arguments of a hey command as the built-in load
// test, and says what of them it could not carry over.
func heyLoadTest(args []string, interval *metav1.Duration) (*v1alpha1.LoadTestHook, []string) {
	lt := &v1alpha1.LoadTestHook{Headers: map[string]string{}}
	var notes []string
	workers, perWorker, count := 50, 0, 200
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			lt.URL = a
			continue
		}
		val := ""
		if heyValueFlags[a] && i+1 < len(args) {
			i++
			val = args[i]
		}
		switch a {
		case "-z":
			if d, err := time.ParseDuration(val); err == nil {
				lt.Duration = &metav1.Duration{Duration: d}
			}
		case "-q":
			perWorker, _ = strconv.Atoi(val)
		case "-c":
			workers, _ = strconv.Atoi(val)
		case "-n":
			count, _ = strconv.Atoi(val)
		case "-m":
			lt.Method = val
		case "-host":
			lt.Headers["Host"] = val
		case "-H":
			if k, v, ok := strings.Cut(val, ":"); ok {
				lt.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		case "-T":
			lt.Headers["Content-Type"] = val
		case "-A":
			lt.Headers["Accept"] = val
		default:
			notes = append(notes, fmt.Sprintf("cmd: hey's %s has no counterpart in the built-in load test; left out", strings.TrimSpace(a+" "+val)))
		}
	}
	notes = append(notes, heyRate(lt, workers, perWorker, count, interval)...)
	if len(lt.Headers) == 0 {
		lt.Headers = nil
	}
	return lt, notes
}

// heyRate sets the load test's rate and duration from hey's workers, rate
// per worker and request count.
func heyRate(lt *v1alpha1.LoadTestHook, workers, perWorker, count int, interval *metav1.Duration) []string {
	var notes []string
	if perWorker <= 0 {
		perWorker = 10
		notes = append(notes, fmt.Sprintf("cmd: hey without -q sends as fast as it can; the built-in load test sends at a fixed rate: %d per second (10 per worker)", workers*perWorker))
	}
	lt.Rate = int32(workers * perWorker)
	if lt.Duration == nil {
		// hey -n sends count requests in all: as long as the rate takes.
		rate := int(lt.Rate)
		lt.Duration = &metav1.Duration{Duration: time.Duration((count+rate-1)/rate) * time.Second}
	}
	if interval != nil && lt.Duration.Duration > interval.Duration {
		notes = append(notes, fmt.Sprintf("cmd: hey -z %s outlasts the analysis interval %s (Flagger's load tester runs it in the background, overlapping); pipit runs its load test at each check, so it lasts the interval", lt.Duration.Duration, interval.Duration))
		lt.Duration = &metav1.Duration{Duration: interval.Duration}
	}
	return notes
}

// heyValueFlags are hey's flags that take a value.
var heyValueFlags = map[string]bool{
	"-z": true, "-q": true, "-c": true, "-n": true, "-m": true, "-H": true, "-host": true, "-t": true,
	"-d": true, "-D": true, "-T": true, "-A": true, "-a": true, "-x": true, "-o": true, "-cpus": true,
}

// shellWords splits a command line into words as a POSIX shell would for
// simple commands: white space separates, and single or double quotes
// group.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
