package convert

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// heyCases are hey command lines and the load test they become.
var heyCases = []struct {
	cmd      string
	rate     int32
	duration time.Duration
	url      string
	headers  map[string]string
	note     string // a note that must be given, if any
}{
	{cmd: "hey -z 1m -q 10 -c 2 http://web-canary/", rate: 20, duration: time.Minute, url: "http://web-canary/"},
	{cmd: "hey -n 100 -q 5 -c 2 http://x/", rate: 10, duration: 10 * time.Second, url: "http://x/"},
	{cmd: "hey -n 101 -q 5 -c 2 http://x/", rate: 10, duration: 11 * time.Second, url: "http://x/"},
	{cmd: `hey -z 30s -c 3 -H "Authorization: Bearer t" -host a.example.com http://gw/`, rate: 30, duration: 30 * time.Second, url: "http://gw/",
		headers: map[string]string{"Authorization": "Bearer t", "Host": "a.example.com"}, note: "hey without -q sends as fast as it can"},
	{cmd: "hey -z 5m -q 1 -c 1 http://slow/", rate: 1, duration: time.Minute, url: "http://slow/", note: "outlasts the analysis interval"},
}

func TestHeyLoadTest(t *testing.T) {
	interval := &metav1.Duration{Duration: time.Minute}
	for _, tc := range heyCases {
		lt, notes := heyLoadTest(shellWords(tc.cmd)[1:], interval)
		if lt.Rate != tc.rate || lt.Duration.Duration != tc.duration || lt.URL != tc.url {
			t.Errorf("%s: rate %d, duration %s, URL %s; want %d, %s, %s", tc.cmd, lt.Rate, lt.Duration.Duration, lt.URL, tc.rate, tc.duration, tc.url)
		}
		for k, v := range tc.headers {
			if lt.Headers[k] != v {
				t.Errorf("%s: header %s = %q, want %q", tc.cmd, k, lt.Headers[k], v)
			}
		}
		joined := strings.Join(notes, "\n")
		if (tc.note == "") != (joined == "") || !strings.Contains(joined, tc.note) {
			t.Errorf("%s: notes %q, want one saying %q", tc.cmd, joined, tc.note)
		}
	}
}
