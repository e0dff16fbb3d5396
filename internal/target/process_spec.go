package target

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Process spec defaults, the same as documented on the API types.
const (
	DefaultProcessReplicas = 1
	DefaultStopGracePeriod = 10 * time.Second
	DefaultProbePath       = "/health"
	DefaultProbePeriod     = 10 * time.Second
	DefaultProbeTimeout    = time.Second
	DefaultProbeSuccesses  = 1
	DefaultProbeFailures   = 3
)

// maxProcessReplicas bounds replicas so a typo cannot fork-bomb the host.
const maxProcessReplicas = 64

// templateVars are the values a process spec's templates can use.
type templateVars struct {
	// Port is the loopback port the replica must listen on.
	Port int
	// Version is the version's label.
	Version string
}

// procSpec is a ProcessSpec with its defaults applied and its templates
// parsed, ready to start replicas from.
type procSpec struct {
	command   string
	args      []*template.Template
	env       map[string]*template.Template
	dir       string
	replicas  int
	readiness *probe // nil: ready once the port accepts connections
	liveness  *probe // nil: none
	grace     time.Duration
	memLimit  int64 // bytes per replica; 0: none stated
}

// ValidateProcessSpec reports what is wrong with s, as the process target
// would find it when starting the version.
func ValidateProcessSpec(s v1alpha1.ProcessSpec) error {
	_, err := resolveProcessSpec(s)
	return err
}

func resolveProcessSpec(s v1alpha1.ProcessSpec) (procSpec, error) {
	var errs []error
	ps := procSpec{command: s.Command, dir: s.WorkingDir, replicas: int(s.Replicas), env: map[string]*template.Template{}}
	if strings.TrimSpace(s.Command) == "" {
		errs = append(errs, errors.New("command: required"))
	}
	for i, a := range s.Args {
		t, err := parseTemplate(fmt.Sprintf("args[%d]", i), a)
		errs = append(errs, err)
		ps.args = append(ps.args, t)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("env: %q is not a variable name", k))
			continue
		}
		t, err := parseTemplate("env."+k, s.Env[k])
		errs = append(errs, err)
		ps.env[k] = t
	}
	switch {
	case ps.replicas == 0:
		ps.replicas = DefaultProcessReplicas
	case ps.replicas < 0 || ps.replicas > maxProcessReplicas:
		errs = append(errs, fmt.Errorf("replicas: %d is not between 1 and %d", ps.replicas, maxProcessReplicas))
	}
	var err error
	if ps.readiness, err = resolveProbe("readiness", s.Readiness); err != nil {
		errs = append(errs, err)
	}
	if ps.liveness, err = resolveProbe("liveness", s.Liveness); err != nil {
		errs = append(errs, err)
	}
	ps.grace = durationOr(s.StopGracePeriod, DefaultStopGracePeriod)
	if ps.grace < 0 {
		errs = append(errs, errors.New("stopGracePeriod: must not be negative"))
	}
	if s.MemoryLimitBytes != nil {
		if *s.MemoryLimitBytes <= 0 {
			errs = append(errs, errors.New("memoryLimitBytes: must be positive"))
		}
		ps.memLimit = *s.MemoryLimitBytes
	}
	if err := errors.Join(errs...); err != nil {
		return procSpec{}, err
	}
	return ps, nil
}

// parseTemplate parses one templated value and tries it once, so a typo
// such as {{ .Prot }} is found when the spec is read, not at start.
func parseTemplate(field, text string) (*template.Template, error) {
	t, err := template.New(field).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if err := t.Execute(&strings.Builder{}, templateVars{Port: 1, Version: "v"}); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return t, nil
}

func resolveProbe(field string, p *v1alpha1.ProbeSpec) (*probe, error) {
	if p == nil {
		return nil, nil
	}
	pr := &probe{
		path:         p.Path,
		initialDelay: durationOr(p.InitialDelay, 0),
		period:       durationOr(p.Period, DefaultProbePeriod),
		timeout:      durationOr(p.Timeout, DefaultProbeTimeout),
		successes:    int(p.SuccessThreshold),
		failures:     int(p.FailureThreshold),
	}
	if pr.path == "" {
		pr.path = DefaultProbePath
	}
	if pr.successes == 0 {
		pr.successes = DefaultProbeSuccesses
	}
	if pr.failures == 0 {
		pr.failures = DefaultProbeFailures
	}
	var errs []error
	if !strings.HasPrefix(pr.path, "/") {
		errs = append(errs, fmt.Errorf("%s.path: %q must start with /", field, pr.path))
	}
	if pr.initialDelay < 0 || pr.period <= 0 || pr.timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: initialDelay must not be negative, period and timeout must be positive", field))
	}
	if pr.successes < 0 || pr.failures < 0 {
		errs = append(errs, fmt.Errorf("%s: thresholds must be positive", field))
	}
	return pr, errors.Join(errs...)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// render fills in the templates for one replica.
func (ps procSpec) render(version string, port int) (args, env []string, err error) {
	vars := templateVars{Port: port, Version: version}
	for _, t := range ps.args {
		var b strings.Builder
		if err := t.Execute(&b, vars); err != nil {
			return nil, nil, err
		}
		args = append(args, b.String())
	}
	for _, k := range slices.Sorted(maps.Keys(ps.env)) {
		var b strings.Builder
		if err := ps.env[k].Execute(&b, vars); err != nil {
			return nil, nil, err
		}
		env = append(env, k+"="+b.String())
	}
	return args, env, nil
}
