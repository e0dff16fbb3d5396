package target

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestValidateProcessSpec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec v1alpha1.ProcessSpec
		want string // "" for valid
	}{
		{"minimal", v1alpha1.ProcessSpec{Command: "app"}, ""},
		{"templates", v1alpha1.ProcessSpec{Command: "app", Args: []string{"--port={{ .Port }}"}, Env: map[string]string{"V": "{{ .Version }}"}}, ""},
		{"no command", v1alpha1.ProcessSpec{}, "command: required"},
		{"unknown field", v1alpha1.ProcessSpec{Command: "app", Args: []string{"{{ .Prot }}"}}, "args[0]"},
		{"bad template", v1alpha1.ProcessSpec{Command: "app", Env: map[string]string{"P": "{{ .Port "}}, "env.P"},
		{"bad env name", v1alpha1.ProcessSpec{Command: "app", Env: map[string]string{"A=B": "x"}}, `"A=B" is not a variable name`},
		{"negative replicas", v1alpha1.ProcessSpec{Command: "app", Replicas: -1}, "replicas"},
		{"relative probe path", v1alpha1.ProcessSpec{Command: "app", Readiness: &v1alpha1.ProbeSpec{Path: "health"}}, "readiness.path"},
		{"zero period", v1alpha1.ProcessSpec{Command: "app", Liveness: &v1alpha1.ProbeSpec{Period: ms(0)}}, "liveness: "},
		{"zero memory limit", v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: new(int64)}, "memoryLimitBytes"},
	} {
		err := ValidateProcessSpec(tc.spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

func TestRenderFillsPortAndVersion(t *testing.T) {
	t.Parallel()
	ps, err := resolveProcessSpec(v1alpha1.ProcessSpec{
		Command: "app", Args: []string{"-addr=127.0.0.1:{{ .Port }}", "plain"},
		Env: map[string]string{"B": "{{ .Version }}-{{ .Port }}", "A": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	args, env, err := ps.render("v2", 8123)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(args, []string{"-addr=127.0.0.1:8123", "plain"}) || !slices.Equal(env, []string{"A=x", "B=v2-8123"}) {
		t.Errorf("render = %q %q", args, env)
	}
	if ps.replicas != 1 || ps.grace != DefaultStopGracePeriod || ps.readiness != nil {
		t.Errorf("defaults = %+v", ps)
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, backoff(time.Second, 30*time.Second, n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoff = %v", got)
		}
	}
}
