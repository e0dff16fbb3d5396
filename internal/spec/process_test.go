package spec

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestResolveProcessRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec v1alpha1.ProcessSpec
		want string // "" for valid
	}{
		{"minimal", v1alpha1.ProcessSpec{Command: "app"}, ""},
		{"templates", v1alpha1.ProcessSpec{Command: "app", Args: []string{"--port={{ .Port }}"}, Env: map[string]string{"V": "{{ .Version }}"}}, ""},
		{"no command", v1alpha1.ProcessSpec{}, "command: is required"},
		{"unknown field", v1alpha1.ProcessSpec{Command: "app", Args: []string{"{{ .Prot }}"}}, "args[0]: "},
		{"bad template", v1alpha1.ProcessSpec{Command: "app", Env: map[string]string{"P": "{{ .Port "}}, "env.P: "},
		{"bad env name", v1alpha1.ProcessSpec{Command: "app", Env: map[string]string{"A=B": "x"}}, `env: "A=B" is not a variable name`},
		{"negative replicas", v1alpha1.ProcessSpec{Command: "app", Replicas: -1}, "replicas: must be from 1 to 64, not -1"},
		{"too many replicas", v1alpha1.ProcessSpec{Command: "app", Replicas: 65}, "replicas: "},
		{"relative probe path", v1alpha1.ProcessSpec{Command: "app", Readiness: &v1alpha1.ProbeSpec{Path: "health"}}, "readiness.path: must start with /"},
		{"zero period", v1alpha1.ProcessSpec{Command: "app", Liveness: &v1alpha1.ProbeSpec{Period: dur(0)}}, "liveness.period: must be positive"},
		{"negative delay", v1alpha1.ProcessSpec{Command: "app", Liveness: &v1alpha1.ProbeSpec{InitialDelay: dur(-time.Second)}}, "liveness.initialDelay: "},
		{"negative grace", v1alpha1.ProcessSpec{Command: "app", StopGracePeriod: dur(-time.Second)}, "stopGracePeriod: "},
		{"zero memory limit", v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: new(int64)}, "memoryLimitBytes: must be positive"},
	} {
		_, err := ResolveProcess(tc.spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

func TestResolveProcessAppliesDefaultsAndRenders(t *testing.T) {
	pp, err := ResolveProcess(v1alpha1.ProcessSpec{
		Command: "app", Args: []string{"-addr=127.0.0.1:{{ .Port }}", "plain"},
		Env:       map[string]string{"B": "{{ .Version }}-{{ .Port }}", "A": "x"},
		Readiness: &v1alpha1.ProbeSpec{Period: dur(time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	args, env, err := pp.Render("v2", 8123)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(args, []string{"-addr=127.0.0.1:8123", "plain"}) || !slices.Equal(env, []string{"A=x", "B=v2-8123"}) {
		t.Errorf("Render = %q %q", args, env)
	}
	want := ProbePlan{Path: "/health", Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	if pp.Replicas != 1 || pp.StopGracePeriod != DefaultStopGracePeriod || pp.Liveness != nil || *pp.Readiness != want {
		t.Errorf("defaults = %+v, readiness %+v", pp, pp.Readiness)
	}
}

func TestCheckCanary(t *testing.T) {
	limit := int64(1 << 30)
	procs := &v1alpha1.RolloutSpec{
		Service: &v1alpha1.ServiceSpec{Stable: v1alpha1.Upstream{Version: "v1", Process: &v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: &limit}}},
		Analysis: &v1alpha1.AnalysisSpec{Metrics: []v1alpha1.MetricSpec{
			{Name: "memory-usage", ThresholdRange: &v1alpha1.ThresholdRange{Max: ptr(80.0)}},
		}},
	}
	urls := &v1alpha1.RolloutSpec{Service: &v1alpha1.ServiceSpec{Stable: v1alpha1.Upstream{URL: "http://127.0.0.1:9001"}}}
	for _, tc := range []struct {
		name string
		s    *v1alpha1.RolloutSpec
		v    v1alpha1.VersionRef
		want string
	}{
		{"url to urls", urls, v1alpha1.VersionRef{Version: "v2", URL: "http://127.0.0.1:9002"}, ""},
		{"machines", urls, v1alpha1.VersionRef{Version: "v2", URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080"}}, ""},
		{"url and machines", urls, v1alpha1.VersionRef{Version: "v2", URL: "http://10.0.0.6:8080", URLs: []string{"http://10.0.0.7:8080"}}, "not both"},
		{"machine twice", urls, v1alpha1.VersionRef{Version: "v2", URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.7:8080"}}, `urls[1]: "http://10.0.0.7:8080" is listed already`},
		{"bad machine", urls, v1alpha1.VersionRef{Version: "v2", URLs: []string{"http://10.0.0.7:8080", "ftp://10.0.0.8"}}, "urls[1]: must be an absolute http or https URL"},
		{"no url", urls, v1alpha1.VersionRef{Version: "v2"}, "version v2: a URL is required"},
		{"too many machines", urls, v1alpha1.VersionRef{Version: "v2", URLs: manyMachines(MaxUpstreamURLs + 1)}, "lists 65 URLs, more than the 64 allowed"},
		{"process to urls", urls, v1alpha1.VersionRef{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app"}}, "reached at URLs"},
		{"url to processes", procs, v1alpha1.VersionRef{Version: "v2", URL: "http://127.0.0.1:9002"}, "run as processes"},
		{"process with limit", procs, v1alpha1.VersionRef{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: &limit}}, ""},
		{"process without limit", procs, v1alpha1.VersionRef{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app"}}, "version v2.process states no memoryLimitBytes"},
		{"bad process", procs, v1alpha1.VersionRef{Version: "v2", Process: &v1alpha1.ProcessSpec{MemoryLimitBytes: &limit}}, "version v2: command: is required"},
	} {
		err := CheckCanary(tc.s, tc.v)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

func TestParseProcessFile(t *testing.T) {
	s, err := ParseProcessFile("v2.yaml", []byte(`command: pipit
args: [sample-app, --listen, "127.0.0.1:{{ .Port }}", --version, v2]
env: {GOMAXPROCS: "1"}
replicas: 2
readiness: {path: /health, period: 500ms}
memoryLimitBytes: 268435456
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Command != "pipit" || len(s.Args) != 5 || s.Replicas != 2 || s.Readiness.Period.Duration != 500*time.Millisecond ||
		*s.MemoryLimitBytes != 256<<20 || s.Env["GOMAXPROCS"] != "1" {
		t.Errorf("parsed %+v", s)
	}

	_, err = ParseProcessFile("v2.yaml", []byte("command: app\nreplicas: -1\nreadiness:\n  path: health\nport: 8080\n"))
	want := []string{
		"v2.yaml:2:1: replicas: must be from 1 to 64, not -1",
		`v2.yaml:4:3: readiness.path: must start with /, as in /health, not "health"`,
		"v2.yaml:5:1: port: ",
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nwant it to contain %q", err, w)
		}
	}
}

// manyMachines lists the URLs of n machines.
func manyMachines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250+1)
	}
	return out
}
