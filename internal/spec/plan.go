package spec

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Defaults applied where a rollout leaves a field out. docs/spec.md lists
// them; keep the two in step.
const (
	DefaultProgressDeadline  = 10 * time.Minute
	DefaultAnalysisInterval  = time.Minute
	DefaultFailureLimit      = 0
	DefaultAnalysisChecks    = 1
	DefaultMaxWeight         = 50 * v1alpha1.PercentScale
	DefaultHealthPath        = "/health"
	DefaultHealthInterval    = time.Second
	DefaultHealthTimeout     = time.Second
	DefaultHealthFailures    = 2
	DefaultDecision          = v1alpha1.DecisionAutomatic
	DefaultConsecutiveErrors = 4
	DefaultNoDataPolicy      = v1alpha1.NoDataHold
	DefaultNoDataTimeout     = 5 * time.Minute
	DefaultSequentialAlpha   = 0.01
	DefaultPassScore         = 75.0
	DefaultMarginalScore     = 50.0
	DefaultJudgeConfidence   = 0.98
	DefaultUndoWindow        = 15 * time.Minute
	// DefaultAllowedChange is the relative change from the baseline a
	// watched metric may make in its bad direction after a promotion when
	// compare.allowedChange is not written: 10%, so that the ordinary
	// noise of one check's window does not undo a good promotion.
	DefaultAllowedChange     = 0.1
	DefaultApprovalOnTimeout = v1alpha1.ApprovalRollback
)

// HookMetricPrefix names the metric that carries a rollout hook's
// answers, so that its failures count like a metric's.
const HookMetricPrefix = "webhook/"

// StepKind says what a resolved step does.
type StepKind int

const (
	// StepSetWeight sends Weight of the traffic to the canary.
	StepSetWeight StepKind = iota
	// StepPause waits Duration, or for a person when Duration is zero.
	StepPause
	// StepAnalysis waits until Checks checks passed at this step.
	StepAnalysis
	// StepApproval waits for a person's approval, up to Duration when it
	// is not zero, then does OnTimeout.
	StepApproval
	// StepExperiment holds an experiment's split until its verdict
	// (Plan.Experiment): it is done when the treatment won.
	StepExperiment
)

func (k StepKind) String() string {
	switch k {
	case StepSetWeight:
		return "setWeight"
	case StepPause:
		return "pause"
	case StepAnalysis:
		return "analysis"
	case StepApproval:
		return "approval"
	case StepExperiment:
		return "experiment"
	}
	return fmt.Sprintf("StepKind(%d)", int(k))
}

// PlanStep is one step with its defaults applied.
type PlanStep struct {
	Kind     StepKind
	Weight   v1alpha1.Percent // StepSetWeight
	Duration time.Duration    // StepPause; zero waits for a person
	Checks   int              // StepAnalysis
	// StepApproval: the message shown and what an expired wait does.
	Message   string
	OnTimeout v1alpha1.ApprovalTimeoutPolicy
}

// Describe renders the step as a short phrase for events and tables.
func (s PlanStep) Describe() string {
	switch s.Kind {
	case StepSetWeight:
		return "setWeight " + s.Weight.String()
	case StepPause:
		if s.Duration == 0 {
			return "pause until promoted"
		}
		return "pause " + s.Duration.String()
	case StepAnalysis:
		if s.Checks == 1 {
			return "analysis (1 check)"
		}
		return fmt.Sprintf("analysis (%d checks)", s.Checks)
	case StepApproval:
		if s.Duration == 0 {
			return "approval"
		}
		return fmt.Sprintf("approval (timeout %s, then %s)", s.Duration, s.OnTimeout)
	case StepExperiment:
		return "experiment until a winner"
	}
	return s.Kind.String()
}

// AnalysisPlan is the analysis section with its defaults applied.
type AnalysisPlan struct {
	Interval time.Duration
	// FailureLimit is the analysis' default, which also applies to the
	// canary score of compared metrics.
	FailureLimit int
	Metrics      []PlanMetric
	Vars         map[string]string
	// Sequential is the continuous error-rate test; Alpha is zero when it
	// is off.
	Sequential SequentialPlan
	Judge      JudgePlan
	// ExpectedRequestsPerSecond is the traffic the file states, zero
	// when it states none; only shown and linted.
	ExpectedRequestsPerSecond float64
}

// PlanMetric is one metric with its limits resolved.
type PlanMetric struct {
	v1alpha1.MetricSpec
	// Hook is set for the metric that carries a rollout hook's answers: 1
	// when it said yes, 0 when it said no.
	Hook                  *v1alpha1.WebhookSpec
	FailureLimit          int
	InconclusiveLimit     int // zero: no limit
	ConsecutiveErrorLimit int
	NoData                v1alpha1.NoDataPolicy
	NoDataTimeout         time.Duration
	// ExperimentGoal is set for the experiment's primary goal when the
	// analysis does not list it: it is measured for the experiment's
	// verdict, and checked against no limit.
	ExperimentGoal bool
	// GoalCounts is set for a conversion metric whose goal is counted in
	// Prometheus: the queries that measure it, in place of the proxy.
	GoalCounts *v1alpha1.PrometheusGoal
}

// SequentialPlan configures the continuous error-rate test.
type SequentialPlan struct {
	Enabled bool
	Alpha   float64
}

// JudgePlan configures the score over compared metrics.
type JudgePlan struct {
	PassScore, MarginalScore float64
	Confidence               float64
	GroupWeights             map[string]float64
}

// Plan is a rollout spec resolved for the engine: every default applied and
// the shorthand expanded into steps. It is derived from the spec each time
// the spec is loaded and never stored.
type Plan struct {
	Steps            []PlanStep
	Decision         v1alpha1.DecisionMode
	ProgressDeadline time.Duration
	Analysis         AnalysisPlan
	// Hooks lists the webhooks by type.
	Hooks map[v1alpha1.HookType][]v1alpha1.WebhookSpec
	// UndoWindow is how long after a promotion undo is possible; zero
	// turns undo off.
	UndoWindow time.Duration
	// PostPromotion is the watch after a promotion; nil when there is none.
	PostPromotion *PostPromotionPlan
	// BlueGreen says the steps preview the new version at weight 0 and
	// the promotion switches all traffic to it at once.
	BlueGreen bool
	// AutoPromotionAfter, when not zero, bounds a wait for a person to
	// promote: the promotion then starts on its own.
	AutoPromotionAfter time.Duration
	// Experiment is set for an experiment: the steps set its split, then
	// hold it until its verdict.
	Experiment *ExperimentPlan
}

// PostPromotionPlan is the resolved spec.postPromotion.
type PostPromotionPlan struct {
	Duration time.Duration
	// Metrics watched: spec.postPromotion.metrics, else the analysis
	// metrics measured by a provider or the built-in proxy (hook metrics
	// answer about a canary, so they are not watched).
	Metrics []PlanMetric
}

// Resolve turns a validated spec into a Plan. It fails only on specs that
// validation would have refused, so callers validate first for good
// messages.
func Resolve(s *v1alpha1.RolloutSpec) (Plan, error) {
	p := Plan{
		Decision:         s.Decision,
		ProgressDeadline: durationOr(s.ProgressDeadline, DefaultProgressDeadline),
		Analysis:         resolveAnalysis(s.Analysis, durationOr(s.Strategy.Interval, DefaultAnalysisInterval)),
	}
	if p.Decision == "" {
		p.Decision = DefaultDecision
	}
	p.UndoWindow = durationOr(s.UndoWindow, DefaultUndoWindow)
	p.Hooks = map[v1alpha1.HookType][]v1alpha1.WebhookSpec{}
	for _, h := range s.Webhooks {
		p.Hooks[h.Type] = append(p.Hooks[h.Type], h)
		if h.Type == v1alpha1.HookRollout {
			one := 1.0
			p.Analysis.Metrics = append(p.Analysis.Metrics, PlanMetric{
				MetricSpec: v1alpha1.MetricSpec{Name: HookMetricPrefix + h.Name, ThresholdRange: &v1alpha1.ThresholdRange{Min: &one}},
				Hook:       &h, FailureLimit: p.Analysis.FailureLimit, ConsecutiveErrorLimit: DefaultConsecutiveErrors,
				NoData: v1alpha1.NoDataIgnore, NoDataTimeout: DefaultNoDataTimeout,
			})
		}
	}
	withGoalCounts(p.Analysis.Metrics, goalsOf(s.Analysis))
	p.PostPromotion = resolvePostPromotion(s.PostPromotion, p.Analysis)
	if p.PostPromotion != nil {
		withGoalCounts(p.PostPromotion.Metrics, goalsOf(s.Analysis))
	}
	if bg := s.Strategy.BlueGreen; bg != nil {
		p.BlueGreen, p.AutoPromotionAfter = true, autoPromotionAfter(bg)
		p.Steps = expandBlueGreen(bg, p.Decision)
		return p, nil
	}
	if ex := s.Strategy.Experiment; ex != nil {
		p.Experiment = resolveExperiment(ex, goalsOf(s.Analysis))
		p.Experiment.ByRules = RuntimeOf(s) == RuntimeKubernetes
		p.Steps = expandExperiment(p.Experiment)
		p.Analysis.Metrics = withGoalMetric(p.Analysis.Metrics, p.Experiment.Metric)
		withGoalCounts(p.Analysis.Metrics, goalsOf(s.Analysis))
		return p, nil
	}
	steps, err := expandSteps(&s.Strategy)
	if err != nil {
		return Plan{}, err
	}
	p.Steps = steps
	return p, nil
}

func resolveAnalysis(a *v1alpha1.AnalysisSpec, interval time.Duration) AnalysisPlan {
	p := AnalysisPlan{
		Interval:   interval,
		Sequential: SequentialPlan{Enabled: true, Alpha: DefaultSequentialAlpha},
		Judge: JudgePlan{PassScore: DefaultPassScore, MarginalScore: DefaultMarginalScore,
			Confidence: DefaultJudgeConfidence},
	}
	if a == nil {
		return p
	}
	p.Interval = durationOr(a.Interval, interval)
	p.Vars = a.Variables
	p.FailureLimit = intOr(a.FailureLimit, DefaultFailureLimit)
	p.ExpectedRequestsPerSecond = floatOr(a.ExpectedRequestsPerSecond, 0)
	for _, m := range a.Metrics {
		p.Metrics = append(p.Metrics, planMetric(m, p.FailureLimit))
	}
	if sq := a.Sequential; sq != nil {
		if sq.Enabled != nil {
			p.Sequential.Enabled = *sq.Enabled
		}
		if sq.FalseAlarmRate != nil {
			p.Sequential.Alpha = *sq.FalseAlarmRate
		}
	}
	if j := a.Judge; j != nil {
		p.Judge.PassScore = floatOr(j.PassScore, p.Judge.PassScore)
		p.Judge.MarginalScore = floatOr(j.MarginalScore, p.Judge.MarginalScore)
		p.Judge.Confidence = floatOr(j.Confidence, p.Judge.Confidence)
		p.Judge.GroupWeights = j.GroupWeights
	}
	return p
}

// planMetric resolves one metric's limits and policies.
func planMetric(m v1alpha1.MetricSpec, failureLimit int) PlanMetric {
	pm := PlanMetric{MetricSpec: m, FailureLimit: failureLimit, ConsecutiveErrorLimit: DefaultConsecutiveErrors,
		NoData: m.NoData, NoDataTimeout: durationOr(m.NoDataTimeout, DefaultNoDataTimeout)}
	pm.FailureLimit = intOr(m.FailureLimit, pm.FailureLimit)
	pm.InconclusiveLimit = intOr(m.InconclusiveLimit, 0)
	pm.ConsecutiveErrorLimit = intOr(m.ConsecutiveErrorLimit, pm.ConsecutiveErrorLimit)
	if pm.NoData == "" {
		pm.NoData = DefaultNoDataPolicy
	}
	return pm
}

// resolvePostPromotion resolves the watch after a promotion: its own
// metrics, or the analysis metrics that measure a version (not the hook
// metrics, which answer about a canary).
func resolvePostPromotion(pp *v1alpha1.PostPromotionSpec, a AnalysisPlan) *PostPromotionPlan {
	if pp == nil {
		return nil
	}
	p := &PostPromotionPlan{Duration: pp.Duration.Duration}
	for _, m := range pp.Metrics {
		p.Metrics = append(p.Metrics, planMetric(m, a.FailureLimit))
	}
	if len(pp.Metrics) == 0 {
		for _, m := range a.Metrics {
			if m.Hook == nil {
				p.Metrics = append(p.Metrics, m)
			}
		}
	}
	return p
}

func intOr(v *int32, def int) int {
	if v == nil {
		return def
	}
	return int(*v)
}

func floatOr(v *float64, def float64) float64 {
	if v == nil {
		return def
	}
	return *v
}

// expandSteps resolves the explicit steps, expands a preset, or expands
// Flagger's shorthand into setWeight + analysis pairs: each weight holds
// until one check passed at it, which is what Flagger does every interval.
func expandSteps(st *v1alpha1.Strategy) ([]PlanStep, error) {
	shorthand := ShorthandWeights(st)
	if len(st.Steps) > 0 && len(shorthand) > 0 {
		return nil, fmt.Errorf("strategy: steps and the shorthand (stepWeight, stepWeights) cannot be mixed")
	}
	if st.Preset != nil {
		if len(st.Steps) > 0 || len(shorthand) > 0 {
			return nil, fmt.Errorf("strategy: a preset cannot be mixed with steps or the shorthand")
		}
		return expandPreset(st.Preset)
	}
	if len(shorthand) > 0 {
		out := make([]PlanStep, 0, 2*len(shorthand))
		for _, w := range shorthand {
			out = append(out,
				PlanStep{Kind: StepSetWeight, Weight: w},
				PlanStep{Kind: StepAnalysis, Checks: DefaultAnalysisChecks})
		}
		return out, nil
	}
	out := make([]PlanStep, 0, len(st.Steps))
	for i, step := range st.Steps {
		switch {
		case step.SetWeight != nil:
			out = append(out, PlanStep{Kind: StepSetWeight, Weight: *step.SetWeight})
		case step.Pause != nil:
			out = append(out, PlanStep{Kind: StepPause, Duration: durationOr(step.Pause.Duration, 0)})
		case step.Approval != nil:
			policy := step.Approval.OnTimeout
			if policy == "" {
				policy = DefaultApprovalOnTimeout
			}
			out = append(out, PlanStep{Kind: StepApproval, Duration: durationOr(step.Approval.Timeout, 0),
				Message: step.Approval.Message, OnTimeout: policy})
		case step.Analysis != nil:
			checks := int(step.Analysis.Checks)
			if checks == 0 {
				checks = DefaultAnalysisChecks
			}
			out = append(out, PlanStep{Kind: StepAnalysis, Checks: checks})
		default:
			return nil, fmt.Errorf("strategy.steps[%d]: no step kind set", i)
		}
	}
	return out, nil
}

// ShorthandWeights lists the weights of the shorthand form: stepWeights as
// written, or stepWeight, 2×stepWeight, … up to maxWeight (default 50%).
// It returns nil when the strategy does not use the shorthand.
func ShorthandWeights(st *v1alpha1.Strategy) []v1alpha1.Percent {
	if len(st.StepWeights) > 0 {
		return st.StepWeights
	}
	if st.StepWeight == nil || *st.StepWeight <= 0 {
		return nil
	}
	maxWeight := v1alpha1.Percent(DefaultMaxWeight)
	if st.MaxWeight != nil {
		maxWeight = *st.MaxWeight
	}
	var ws []v1alpha1.Percent
	for w := *st.StepWeight; w < maxWeight; w += *st.StepWeight {
		ws = append(ws, w)
	}
	return append(ws, maxWeight)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
