// Package lint checks rollout files for the release anti-patterns that
// validation lets through: files that are valid, and will run, but whose
// rollout cannot catch a bad version, or moves faster than anyone can see
// what it does. Each rule says what goes wrong in production and how to
// fix it; docs/lint.md explains them.
package lint

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Severity ranks a finding; --fail-on compares against it.
type Severity int

// The severities, least first.
const (
	Info Severity = iota
	Warning
	Error
)

var severityNames = [...]string{Info: "info", Warning: "warning", Error: "error"}

// String returns the severity's name: info, warning or error.
func (s Severity) String() string { return severityNames[s] }

// MarshalText writes the severity's name, as JSON shows it.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity reads info, warning or error.
func ParseSeverity(name string) (Severity, error) {
	for s, n := range severityNames {
		if n == name {
			return Severity(s), nil
		}
	}
	return 0, fmt.Errorf("must be error, warning or info, not %q", name)
}

// Finding is one anti-pattern found in a rollout file.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Column   int      `json:"column"`
	// Rollout is the name of the rollout the finding is about.
	Rollout string `json:"rollout"`
	// Field is the path of the field pointed at, such as
	// spec.strategy.steps[2].setWeight; empty in another kind's document.
	Field string `json:"field,omitempty"`
	// Problem says what goes wrong in production.
	Problem string `json:"problem"`
	// Fix says how to fix it.
	Fix string `json:"fix"`
}

// String renders the finding as FILE:LINE:COL: SEVERITY: RULE: FIELD:
// PROBLEM, and the fix on a second, indented line.
func (f Finding) String() string {
	field := ""
	if f.Field != "" {
		field = f.Field + ": "
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s: %s%s\n\tfix: %s", f.File, f.Line, f.Column, f.Severity, f.Rule, field, f.Problem, f.Fix)
}

// Options tune the rules.
type Options struct {
	// MaxStep is the largest weight increase, in percent, between two
	// hand-written setWeight steps (and from the last one to the 100% of
	// promotion). Zero means DefaultMaxStep.
	MaxStep float64
}

// Thresholds of the rules, shown in docs/lint.md.
const (
	// DefaultMaxStep is the largest weight jump allowed by default: it
	// lets 5 → 25 → 50 → 100 through and stops the write-up's 5 → 100.
	DefaultMaxStep = 50.0
	// MaxFirstStep is the largest first weight, in percent.
	MaxFirstStep = 25.0
)

// Rule is one check.
type Rule struct {
	// Name identifies the rule in findings, such as blind-canary.
	Name     string
	Severity Severity
	// Summary is one line on what the rule looks for.
	Summary string
	check   func(*target) []hit
}

// hit is what a rule reports; Lint adds the rule, the severity and the
// position.
type hit struct {
	field        string
	other        *spec.Other // set when the hit is in another document
	line, column int         // within other
	problem, fix string
}

// target is one rollout and what the rules look at beside it.
type target struct {
	doc     *spec.Document
	r       *v1alpha1.Rollout
	plan    spec.Plan
	others  []*spec.Other
	maxStep float64
}

// Rules lists every rule, in the order docs/lint.md describes them.
func Rules() []Rule {
	return []Rule{
		{"blind-canary", Warning, "no analysis, or no metric that can roll back", blindCanary},
		{"no-readiness", Warning, "a process or Deployment without a readiness probe", noReadiness},
		{"first-step-too-big", Warning, "the first hand-written weight is above 25%", firstStepTooBig},
		{"weight-jump", Warning, "a hand-written weight increase larger than --max-step", weightJump},
		{"stage-too-short", Warning, "a stage sees too few requests to notice a worse error rate", stageTooShort},
		{"wait-without-timeout", Warning, "an approval or manual pause that waits for ever", waitWithoutTimeout},
		{"migration-without-contract", Warning, "a database migration hook without a contract step or undo window", migrationWithoutContract},
		{"mirror-writes", Warning, "mirroring copies methods that change state", mirrorWrites},
		{"sticky-without-user-key", Warning, "sticky sessions without a user key", stickyWithoutUserKey},
		{"no-rollback-notification", Info, "nobody is told of a rollback", noRollbackNotification},
	}
}

// Lint runs every rule over the rollouts of src and returns the findings
// ordered by file position. It fails only when a rollout has no plan,
// which spec.ReadSource's validation rules out.
func Lint(src *spec.Source, opts Options) ([]Finding, error) {
	if opts.MaxStep <= 0 {
		opts.MaxStep = DefaultMaxStep
	}
	var out []Finding
	for _, doc := range src.Documents {
		plan, err := spec.Resolve(&doc.Rollout.Spec)
		if err != nil {
			return nil, fmt.Errorf("%s: rollout %s: %w", doc.File, doc.Rollout.Name, err)
		}
		t := &target{doc: doc, r: doc.Rollout, plan: plan, others: src.Others, maxStep: opts.MaxStep}
		for _, rule := range Rules() {
			for _, h := range rule.check(t) {
				out = append(out, t.finding(rule, h))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return out, nil
}

func (t *target) finding(rule Rule, h hit) Finding {
	f := Finding{Rule: rule.Name, Severity: rule.Severity, Rollout: t.r.Name, Field: h.field, Problem: h.problem, Fix: h.fix}
	if h.other != nil {
		f.File, f.Line, f.Column = h.other.File, h.line, h.column
	} else {
		f.File = t.doc.File
		f.Line, f.Column = t.doc.Position(h.field)
	}
	return f
}

// handWrittenSteps returns the steps a person wrote out one by one, which
// the weight rules judge. Shorthand weights, a preset's expansion and
// blue-green (which validation keeps apart from steps) are not written in
// Steps, so they are exempt as they should be; experiments, once they
// exist, are a deliberate choice and return nil here too — one line.
func handWrittenSteps(r *v1alpha1.Rollout) []v1alpha1.Step {
	return r.Spec.Strategy.Steps
}

// stepField is the path of step i's field.
func stepField(i int, field string) string {
	return fmt.Sprintf("spec.strategy.steps[%d].%s", i, field)
}

// pct renders a percentage as the file writes it.
func pct(f float64) string {
	return strings.TrimSuffix(v1alpha1.PercentOf(f).String(), "%") + "%"
}
