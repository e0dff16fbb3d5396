package spec

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

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

// MaxProcessReplicas bounds replicas so that a typo cannot fork-bomb the
// host.
const MaxProcessReplicas = 64

// ProcessVars are the values a process spec's templates can use.
type ProcessVars struct {
	// Port is the loopback port the replica must listen on.
	Port int
	// Version is the version's label.
	Version string
}

// ProcessPlan is a ProcessSpec with its defaults applied and its
// templates parsed, ready to start replicas from.
type ProcessPlan struct {
	Command    string
	Args       []*template.Template
	Env        map[string]*template.Template
	WorkingDir string
	Replicas   int
	// Readiness is nil when a replica is ready once its port accepts
	// connections; Liveness is nil when only an exit restarts one.
	Readiness, Liveness *ProbePlan
	StopGracePeriod     time.Duration
	// MemoryLimitBytes is per replica; 0 when none is stated.
	MemoryLimitBytes int64
}

// ProbePlan is a ProbeSpec with its defaults applied.
type ProbePlan struct {
	Path                               string
	InitialDelay, Period, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

// ResolveProcess checks s and applies its defaults. Its error lists every
// problem, each naming its field (command, args[0], readiness.period…).
func ResolveProcess(s v1alpha1.ProcessSpec) (ProcessPlan, error) {
	var v validator
	pp := v.process("", &s)
	return pp, v.errs.Err()
}

// process checks s, reporting problems under the field path p, and
// resolves it. The plan is only usable when nothing was reported.
func (v *validator) process(p string, s *v1alpha1.ProcessSpec) ProcessPlan {
	pp := ProcessPlan{
		Command: s.Command, WorkingDir: s.WorkingDir, Replicas: int(s.Replicas),
		Env:             map[string]*template.Template{},
		StopGracePeriod: durationOr(s.StopGracePeriod, DefaultStopGracePeriod),
	}
	if strings.TrimSpace(s.Command) == "" {
		v.add(join(p, "command"), "is required: the program to run, a path or a name looked up in PATH")
	}
	for i, a := range s.Args {
		f := index(join(p, "args"), fmt.Sprint(i))
		pp.Args = append(pp.Args, v.template(f, a))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		f := join(join(p, "env"), k)
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.add(join(p, "env"), "%q is not a variable name", clip(k))
			continue
		}
		pp.Env[k] = v.template(f, s.Env[k])
	}
	switch {
	case pp.Replicas == 0:
		pp.Replicas = DefaultProcessReplicas
	case pp.Replicas < 0 || pp.Replicas > MaxProcessReplicas:
		v.add(join(p, "replicas"), "must be from 1 to %d, not %d", MaxProcessReplicas, pp.Replicas)
	}
	pp.Readiness = v.probe(join(p, "readiness"), s.Readiness)
	pp.Liveness = v.probe(join(p, "liveness"), s.Liveness)
	if pp.StopGracePeriod < 0 {
		v.add(join(p, "stopGracePeriod"), "must not be negative, not %s", pp.StopGracePeriod)
	}
	if m := s.MemoryLimitBytes; m != nil {
		if *m <= 0 {
			v.add(join(p, "memoryLimitBytes"), "must be positive, not %d", *m)
		}
		pp.MemoryLimitBytes = *m
	}
	return pp
}

// template parses one templated value and tries it once, so that a typo
// such as {{ .Prot }} is found when the spec is read, not at start.
func (v *validator) template(field, text string) *template.Template {
	t, err := template.New(field).Option("missingkey=error").Parse(text)
	if err == nil {
		err = t.Execute(&strings.Builder{}, ProcessVars{Port: 1, Version: "v"})
	}
	if err != nil {
		v.add(field, "%v; the values are {{ .Port }} and {{ .Version }}", err)
		return nil
	}
	return t
}

func (v *validator) probe(p string, s *v1alpha1.ProbeSpec) *ProbePlan {
	if s == nil {
		return nil
	}
	pr := &ProbePlan{
		Path:             s.Path,
		InitialDelay:     durationOr(s.InitialDelay, 0),
		Period:           durationOr(s.Period, DefaultProbePeriod),
		Timeout:          durationOr(s.Timeout, DefaultProbeTimeout),
		SuccessThreshold: int(s.SuccessThreshold),
		FailureThreshold: int(s.FailureThreshold),
	}
	if pr.Path == "" {
		pr.Path = DefaultProbePath
	}
	if pr.SuccessThreshold == 0 {
		pr.SuccessThreshold = DefaultProbeSuccesses
	}
	if pr.FailureThreshold == 0 {
		pr.FailureThreshold = DefaultProbeFailures
	}
	if !strings.HasPrefix(pr.Path, "/") {
		v.add(join(p, "path"), "must start with /, as in /health, not %q", clip(pr.Path))
	}
	if pr.InitialDelay < 0 {
		v.add(join(p, "initialDelay"), "must not be negative, not %s", pr.InitialDelay)
	}
	v.positive(join(p, "period"), s.Period)
	v.positive(join(p, "timeout"), s.Timeout)
	if pr.SuccessThreshold < 0 {
		v.add(join(p, "successThreshold"), "must not be negative, not %d", pr.SuccessThreshold)
	}
	if pr.FailureThreshold < 0 {
		v.add(join(p, "failureThreshold"), "must not be negative, not %d", pr.FailureThreshold)
	}
	return pr
}

// Render fills in the templates for one replica of version on port: the
// arguments, and the environment as sorted KEY=VALUE pairs.
func (pp ProcessPlan) Render(version string, port int) (args, env []string, err error) {
	vars := ProcessVars{Port: port, Version: version}
	for _, t := range pp.Args {
		var b strings.Builder
		if err := t.Execute(&b, vars); err != nil {
			return nil, nil, err
		}
		args = append(args, b.String())
	}
	for _, k := range slices.Sorted(maps.Keys(pp.Env)) {
		var b strings.Builder
		if err := pp.Env[k].Execute(&b, vars); err != nil {
			return nil, nil, err
		}
		env = append(env, k+"="+b.String())
	}
	return args, env, nil
}

// Builtin metrics measured on the processes of a process target, in % of
// one core (summed over a version's replicas) and of the version's memory
// limit.
const (
	MetricCPUUsage    = "cpu-usage"
	MetricMemoryUsage = "memory-usage"
)

// usageMetrics refuses the usage metrics where they cannot be measured.
func (v *validator) usageMetrics(s *v1alpha1.RolloutSpec) {
	if s.Analysis == nil || s.Service == nil {
		return
	}
	type version struct {
		field   string
		process *v1alpha1.ProcessSpec
	}
	versions := []version{{"spec.service.stable", s.Service.Stable.Process}}
	if c := s.Service.Canary; c != nil {
		versions = append(versions, version{"spec.service.canary", c.Process})
	}
	for i, m := range s.Analysis.Metrics {
		if !isBuiltin(m) {
			continue
		}
		for _, ver := range versions {
			if reason := usageProblem(m.Name, ver.field, ver.process); reason != "" {
				v.add(fmt.Sprintf("spec.analysis.metrics[%d].name", i), "%s", reason)
				break
			}
		}
	}
}

// usageProblem says why metric cannot be measured on the version at field
// p that runs as process (nil: reached at a URL), or returns "".
func usageProblem(metric, p string, process *v1alpha1.ProcessSpec) string {
	switch {
	case metric != MetricCPUUsage && metric != MetricMemoryUsage:
		return ""
	case process == nil:
		return metric + " is measured on the processes pipit runs, and " + p + " is a URL"
	case metric == MetricMemoryUsage && process.MemoryLimitBytes == nil:
		return "memory-usage is a share of the memory limit, and " + p + ".process states no memoryLimitBytes"
	}
	return ""
}

// CheckCanary reports why v cannot be deployed as the canary of the
// rollout s, or returns nil: one of the variants of a flag; else it must
// be of the stable's kind, a valid
// process description when it is one, and state a memory limit when the
// analysis measures memory-usage.
func CheckCanary(s *v1alpha1.RolloutSpec, v v1alpha1.VersionRef) error {
	switch {
	case s.Flag != nil:
		return checkFlagCanary(s.Flag, v)
	case s.Service == nil:
		return nil // a Kubernetes rollout's canary is its workload's template
	case s.Service.Stable.Process != nil && v.Process == nil:
		return fmt.Errorf("rollout's versions run as processes: deploy %s with a process description, not a URL", v.Version)
	case s.Service.Stable.Process == nil && v.Process != nil:
		return fmt.Errorf("rollout's versions are reached at URLs: deploy %s with a URL, not a process", v.Version)
	case v.Process == nil:
		return checkReachedAt(v)
	}
	if _, err := ResolveProcess(*v.Process); err != nil {
		return fmt.Errorf("version %s: %w", v.Version, err)
	}
	if s.Analysis != nil {
		for _, m := range s.Analysis.Metrics {
			if reason := usageProblem(m.Name, "version "+v.Version, v.Process); isBuiltin(m) && reason != "" {
				return errors.New(reason)
			}
		}
	}
	return nil
}

// checkReachedAt explains what is wrong with where v, a version reached
// by URL, is reached: at one URL, or at the URLs of its machines (as
// spec.service.*.urls are checked), not both.
func checkReachedAt(v v1alpha1.VersionRef) error {
	switch {
	case v.URL != "" && v.URLs != nil:
		return fmt.Errorf("version %s: give one URL or the URLs of its machines, not both", v.Version)
	case v.URL == "" && v.URLs == nil:
		return fmt.Errorf("version %s: a URL is required, or the URLs of its machines", v.Version)
	case v.URLs == nil:
		if reason := checkURL(v.URL, true); reason != "" {
			return fmt.Errorf("version %s: url %s", v.Version, reason)
		}
		return nil
	}
	var val validator
	val.urls("urls", v.URLs)
	if len(val.errs) > 0 {
		return fmt.Errorf("version %s: %w", v.Version, val.errs)
	}
	return nil
}
