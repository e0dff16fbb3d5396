package spec

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"text/template"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis/condition"
)

// unit is what a built-in metric's value measures, which bounds its
// thresholds.
type unit int

const (
	unitPercent unit = iota // 0 to 100
	unitMillis              // a latency in milliseconds
	unitCount               // requests over the analysis interval
	unitUsage               // % of one core or of a memory limit; may pass 100
)

// maxConditionLength bounds the expressions compiled during validation: a
// condition compares a few numbers, and compiling costs time in its length.
const maxConditionLength = 1024

// Directions of a compared metric: the change that counts against the
// canary.
const (
	DirectionIncrease = "increase"
	DirectionDecrease = "decrease"
	DirectionEither   = "either"
)

// builtinMetrics are the metrics pipit measures itself, in the order
// MetricSpec's documentation lists them: the built-in proxy's, then the
// usage of process targets. worse is the change that is bad by the
// metric's meaning.
var builtinMetrics = []struct {
	name  string
	unit  unit
	worse string
}{
	{"request-success-rate", unitPercent, DirectionDecrease},
	{"error-rate", unitPercent, DirectionIncrease},
	{"request-count", unitCount, DirectionEither},
	{"latency-mean", unitMillis, DirectionIncrease},
	{"latency-p50", unitMillis, DirectionIncrease},
	{"latency-p95", unitMillis, DirectionIncrease},
	{"latency-p99", unitMillis, DirectionIncrease},
	{"request-duration", unitMillis, DirectionIncrease},
	{MetricConversionRate, unitPercent, DirectionDecrease},
	{MetricCPUUsage, unitUsage, DirectionIncrease},
	{MetricMemoryUsage, unitUsage, DirectionIncrease},
}

// CompareDirection is the change of a compared metric that counts against
// the canary: compare.direction when it is written; else, for a builtin
// metric, the one its meaning gives (more latency, errors or usage, less
// success); else either, Kayenta's default, as pipit cannot know what a
// query of the user's means. A canary faster than a loaded stable is not
// rolled back for it.
func CompareDirection(m v1alpha1.MetricSpec) string {
	if m.Compare != nil && m.Compare.Direction != "" {
		return m.Compare.Direction
	}
	if isBuiltin(m) {
		for _, b := range builtinMetrics {
			if b.name == builtinName(m.Name) {
				return b.worse
			}
		}
	}
	return DirectionEither
}

// MetricConversionRate is the builtin metric of conversions: the share of
// a version's users, in percent, who reached the first goal of
// spec.analysis.goals; MetricConversionRate + ":" + NAME is that of the
// goal NAME.
const MetricConversionRate = "conversion-rate"

// ConversionGoal returns the goal a conversion metric's name names: ""
// for the first goal (conversion-rate), NAME for conversion-rate:NAME.
// ok is false when name is no conversion metric.
func ConversionGoal(name string) (goal string, ok bool) {
	if name == MetricConversionRate {
		return "", true
	}
	goal, ok = strings.CutPrefix(name, MetricConversionRate+":")
	return goal, ok && goal != ""
}

// builtinName is the entry of builtinMetrics that a metric's name
// stands for: conversion-rate for each conversion-rate:GOAL, else name.
func builtinName(name string) string {
	if _, ok := ConversionGoal(name); ok {
		return MetricConversionRate
	}
	return name
}

// goals checks spec.analysis.goals: each needs a name, unique, and a
// condition, written in the traffic rules' syntax; and users must be told
// apart by a user key, or there is nobody to count.
func (v *validator) goals(s *v1alpha1.RolloutSpec) {
	const p = "spec.analysis.goals"
	goals := s.Analysis.Goals
	if len(goals) > v1alpha1.MaxGoals {
		v.add(p, "lists %d goals; at most %d are counted", len(goals), v1alpha1.MaxGoals)
	}
	first := make(map[string]int, len(goals))
	for i, g := range goals {
		q := fmt.Sprintf("%s[%d]", p, i)
		switch j, dup := first[g.Name]; {
		case g.Name == "":
			v.add(q+".name", "is required: the metric conversion-rate:NAME names the goal")
		case strings.ContainsAny(g.Name, " :"):
			v.add(q+".name", "%q may not hold a space or a colon: conversion-rate:NAME names it", clip(g.Name))
		case dup:
			v.add(q+".name", "goal %q is already listed as goals[%d]", clip(g.Name), j)
		default:
			first[g.Name] = i
		}
		v.goal(s, q, g)
	}
	proxied := slices.ContainsFunc(goals, func(g v1alpha1.Goal) bool { return g.Prometheus == nil })
	if proxied && s.Service != nil && (s.Service.Traffic == nil || len(s.Service.Traffic.UserKey) == 0) {
		v.add(p, "need a user key to tell users apart: set spec.service.traffic.userKey, such as [{header: X-User-ID}]")
	}
}

// goal checks how one goal is counted: by pipit's proxy from request
// conditions, by Prometheus queries (the only way in Kubernetes), or, for
// a flag, by the application's events naming it.
func (v *validator) goal(s *v1alpha1.RolloutSpec, q string, g v1alpha1.Goal) {
	conditions := len(g.Headers) > 0 || g.Path != nil || g.Method != nil
	switch {
	case s.Flag != nil && (conditions || g.Prometheus != nil):
		v.add(q, "a flag has no requests to match: its goal is reached by a conversion event naming it (\"goal\": %q)", clip(g.Name))
	case s.Flag != nil:
	case g.Prometheus != nil && conditions:
		v.add(q, "is counted by prometheus or by request conditions (method, path, headers), not both")
	case g.Prometheus != nil:
		v.prometheusGoal(s, q+".prometheus", g.Prometheus)
	case RuntimeOf(s) == RuntimeKubernetes:
		v.add(q, "request conditions are counted by pipit's own proxy, which does not carry Kubernetes traffic: count the goal's users in Prometheus with prometheus: {visitors, conversions}")
	case !conditions:
		v.add(q, "reaches every request: give it a method, a path or headers, or count it with prometheus: {visitors, conversions}")
	default:
		v.requestConditions(q, &v1alpha1.TrafficRule{Headers: g.Headers, Path: g.Path, Method: g.Method})
	}
}

// prometheusGoal checks a goal's queries and where they run: the
// controller has a default Prometheus, pipit up has none.
func (v *validator) prometheusGoal(s *v1alpha1.RolloutSpec, q string, g *v1alpha1.PrometheusGoal) {
	switch {
	case g.Address != "":
		if reason := checkURL(g.Address, true); reason != "" {
			v.add(q+".address", "%s", reason)
		}
	case RuntimeOf(s) == RuntimeStandalone:
		v.add(q+".address", "is required in standalone mode, such as http://127.0.0.1:9090 (in Kubernetes it defaults to the controller's --prometheus-url)")
	}
	for _, query := range []struct{ field, text string }{{"visitors", g.Visitors}, {"conversions", g.Conversions}} {
		switch _, err := template.New(query.field).Parse(query.text); {
		case strings.TrimSpace(query.text) == "":
			v.add(q+"."+query.field, "is required: a PromQL query counting the version's users, such as sum(increase(shop_visitors_total{service=\"web-{{ .Role }}\"}[{{ .Elapsed }}]))")
		case err != nil:
			v.add(q+"."+query.field, "is not a valid template: %v", err)
		}
	}
	v.positive(q+".timeout", g.Timeout)
	v.auth(q+".auth", g.Auth)
	v.tls(q+".tls", g.TLS)
}

// conversionMetric checks that a conversion metric names a goal of
// spec.analysis.goals.
func (v *validator) conversionMetric(p, name string) {
	goal, _ := ConversionGoal(name)
	switch {
	case len(v.goalNames) == 0:
		v.add(p+".name", "%s counts the users who reach a goal: list the goals in spec.analysis.goals", clip(name))
	case goal != "" && !slices.Contains(v.goalNames, goal):
		v.add(p+".name", "names no goal of spec.analysis.goals: the goals are %s", strings.Join(v.goalNames, ", "))
	}
}

func (v *validator) analysis(a *v1alpha1.AnalysisSpec) {
	const p = "spec.analysis"
	v.positive(p+".interval", a.Interval)
	v.notNegative(p+".failureLimit", a.FailureLimit)
	v.metricList(p+".metrics", a.Metrics)
	if sq := a.Sequential; sq != nil && sq.FalseAlarmRate != nil {
		if f := *sq.FalseAlarmRate; !(f > 0 && f < 1) {
			v.add(p+".sequential.falseAlarmRate", "must be a probability between 0 and 1, such as 0.01, not %s", fnum(f))
		}
	}
	if rps := a.ExpectedRequestsPerSecond; rps != nil && !(*rps > 0) {
		v.add(p+".expectedRequestsPerSecond", "must be more than 0, not %s", fnum(*rps))
	}
	if a.Judge != nil {
		v.judge(p+".judge", a.Judge)
	}
}

// postPromotion checks the watch after a promotion: a duration within the
// undo window, since the undo needs the previous version warm, and
// metrics written as the analysis' are, or analysis metrics to reuse.
func (v *validator) postPromotion(s *v1alpha1.RolloutSpec) {
	pp := s.PostPromotion
	if pp == nil {
		return
	}
	const p = "spec.postPromotion"
	undo, field := DefaultUndoWindow, "the default undoWindow"
	if s.UndoWindow != nil {
		undo, field = s.UndoWindow.Duration, "spec.undoWindow"
	}
	switch d := pp.Duration.Duration; {
	case d <= 0:
		v.add(p+".duration", "is required and must be positive, such as 10m, not %s", d)
	case d > undo:
		v.add(p+".duration", "%s exceeds %s (%s): the undo after a failed watch needs the previous version still warm; shorten the watch or lengthen spec.undoWindow", d, field, undo)
	}
	v.metricList(p+".metrics", pp.Metrics)
	if len(pp.Metrics) == 0 && (s.Analysis == nil || len(s.Analysis.Metrics) == 0) {
		v.add(p+".metrics", "is required when spec.analysis has no metrics: the watch has nothing to measure")
	}
}

// metricList checks each metric of a list, and that no name is listed
// twice.
func (v *validator) metricList(p string, metrics []v1alpha1.MetricSpec) {
	first := make(map[string]int, len(metrics))
	for i, m := range metrics {
		q := fmt.Sprintf("%s[%d]", p, i)
		if j, dup := first[m.Name]; dup && m.Name != "" {
			v.add(q+".name", "metric %q is already listed as metrics[%d]", clip(m.Name), j)
		} else {
			first[m.Name] = i
		}
		v.metric(q, &m)
	}
}

func (v *validator) metric(p string, m *v1alpha1.MetricSpec) {
	u, builtin := metricUnit(m.Name)
	if _, conv := ConversionGoal(m.Name); conv && isBuiltin(*m) {
		v.conversionMetric(p, m.Name)
	}
	switch {
	case m.TemplateRef != nil:
		v.templateRef(p, m)
	case m.Provider != nil:
		v.provider(p+".provider", m.Provider)
		v.errs = append(v.errs, checkArgs(p+".args", m.Provider, m.Args, nil)...)
	case m.Name == "":
		v.add(p+".name", "is required: one of %s, or a name of your own with a provider", metricNames())
	case !builtin:
		if guess := closest(m.Name, metricNameList()); guess != "" {
			v.add(p+".name", "unknown metric %q; did you mean %q?", clip(m.Name), guess)
		} else {
			v.add(p+".name", "unknown metric %q; the built-in metrics are %s, and other metrics need a provider",
				clip(m.Name), metricNames())
		}
	}
	if (m.Provider != nil || m.TemplateRef != nil) && m.Name == "" {
		v.add(p+".name", "is required")
	}
	if m.Args != nil && m.Provider == nil && m.TemplateRef == nil {
		v.add(p+".args", "are the values of {{ .Args.NAME }} in a provider's query: set them on a metric with a provider or a templateRef")
	}
	if m.ThresholdRange != nil {
		v.threshold(p+".thresholdRange", m.Name, u, builtin && isBuiltin(*m), m.ThresholdRange)
	}
	v.condition(p+".successCondition", m.SuccessCondition)
	v.condition(p+".failureCondition", m.FailureCondition)
	v.unitField(p+".unit", m)
	if c := m.Compare; c != nil {
		switch c.Direction {
		case "", "increase", "decrease", "either":
		default:
			v.add(p+".compare.direction", "must be increase, decrease or either, not %q", clip(c.Direction))
		}
		if builtin && isBuiltin(*m) && m.Name == "request-count" {
			v.add(p+".compare", "request-count cannot be compared: each version's share of the requests is its weight, not its behaviour; compare request-success-rate or a latency instead")
		}
		if f := c.AllowedChange; f != nil && !(*f >= 0 && !math.IsInf(*f, 0)) {
			v.add(p+".compare.allowedChange", "must be a finite number, 0 or more, such as 0.1 for 10%%")
		}
		// Compared metrics decide together through the canary score, whose
		// limit is the analysis' failureLimit: a metric's own would be
		// silently ignored.
		if m.FailureLimit != nil {
			v.add(p+".failureLimit", "does not apply to a compared metric: compared metrics decide through the canary score, limited by spec.analysis.failureLimit")
		}
	}
	v.notNegative(p+".failureLimit", m.FailureLimit)
	v.notNegative(p+".inconclusiveLimit", m.InconclusiveLimit)
	v.notNegative(p+".consecutiveErrorLimit", m.ConsecutiveErrorLimit)
	switch m.NoData {
	case "", v1alpha1.NoDataHold, v1alpha1.NoDataFail, v1alpha1.NoDataIgnore:
	default:
		v.add(p+".noData", "must be hold, fail or ignore, not %q", clip(string(m.NoData)))
	}
	v.positive(p+".noDataTimeout", m.NoDataTimeout)
}

func (v *validator) threshold(p, metric string, u unit, builtin bool, tr *v1alpha1.ThresholdRange) {
	if tr.Min == nil && tr.Max == nil {
		v.add(p, "needs min or max")
		return
	}
	ok := true
	for _, b := range []struct {
		name  string
		value *float64
	}{{"min", tr.Min}, {"max", tr.Max}} {
		if b.value == nil {
			continue
		}
		f := *b.value
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			v.add(p+"."+b.name, "must be a finite number")
		case builtin && u == unitPercent && (f < 0 || f > 100):
			v.add(p+"."+b.name, "%s is a percentage from 0 to 100; %s is outside it", metric, fnum(f))
		case builtin && f < 0:
			v.add(p+"."+b.name, "%s cannot be negative, so %s is never reached", metric, fnum(f))
		default:
			continue
		}
		ok = false
	}
	if ok && tr.Min != nil && tr.Max != nil && *tr.Min > *tr.Max {
		v.add(p, "min %s is above max %s, so no value passes", fnum(*tr.Min), fnum(*tr.Max))
	}
}

// condition checks that an expression compiles as the analysis will run
// it, so that a typo fails the file rather than the rollout.
func (v *validator) condition(p, src string) {
	switch {
	case src == "":
		return
	case len(src) > maxConditionLength:
		v.add(p, "is %d characters long; a condition may have at most %d", len(src), maxConditionLength)
		return
	}
	if err := condition.Compile(src); err != nil {
		// expr's messages continue with the source and a caret on
		// further lines; the first line says what is wrong.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		v.add(p, "is not a valid condition over result, canary and stable: %s", msg)
	}
}

func (v *validator) provider(p string, mp *v1alpha1.MetricProvider) {
	switch {
	case mp.Prometheus != nil && mp.Web != nil:
		v.add(p, "sets prometheus and web; a metric has one provider")
	case mp.Prometheus != nil:
		pr := mp.Prometheus
		q := p + ".prometheus"
		if pr.Address == "" {
			v.add(q+".address", "is required, such as http://127.0.0.1:9090")
		} else if reason := checkURL(pr.Address, true); reason != "" {
			v.add(q+".address", "%s", reason)
		}
		if strings.TrimSpace(pr.Query) == "" {
			v.add(q+".query", "is required")
		}
		v.positive(q+".timeout", pr.Timeout)
		v.auth(q+".auth", pr.Auth)
		v.tls(q+".tls", pr.TLS)
	case mp.Web != nil:
		w := mp.Web
		q := p + ".web"
		if w.URL == "" {
			v.add(q+".url", "is required")
		} else if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			v.add(q+".url", "must start with http:// or https://")
		}
		switch w.Method {
		case "", "GET":
			if w.Body != "" {
				v.add(q+".body", "is sent only with method POST")
			}
		case "POST":
		default:
			v.add(q+".method", "must be GET or POST, not %q", clip(w.Method))
		}
		if w.JSONPath == "" {
			v.add(q+".jsonPath", "is required, such as {$.data.value}")
		}
		v.positive(q+".timeout", w.Timeout)
		v.auth(q+".auth", w.Auth)
		v.tls(q+".tls", w.TLS)
	default:
		v.add(p, "needs prometheus or web")
	}
}

func (v *validator) auth(p string, a *v1alpha1.HTTPAuth) {
	if a == nil {
		return
	}
	set := 0
	for _, s := range []bool{a.BearerTokenFile != "", a.BearerTokenEnv != "", a.Basic != nil} {
		if s {
			set++
		}
	}
	if set != 1 {
		v.add(p, "needs exactly one of bearerTokenFile, bearerTokenEnv and basic")
	}
	if b := a.Basic; b != nil {
		if b.Username == "" {
			v.add(p+".basic.username", "is required")
		}
		if b.PasswordFile != "" && b.PasswordEnv != "" {
			v.add(p+".basic", "sets passwordFile and passwordEnv; use one")
		}
	}
}

func (v *validator) tls(p string, t *v1alpha1.TLSOptions) {
	if t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		v.add(p, "a client certificate needs both certFile and keyFile")
	}
}

func (v *validator) judge(p string, j *v1alpha1.JudgeSpec) {
	pass, marginal, ok := DefaultPassScore, DefaultMarginalScore, true
	for _, s := range []struct {
		name  string
		value *float64
		dst   *float64
	}{{"passScore", j.PassScore, &pass}, {"marginalScore", j.MarginalScore, &marginal}} {
		if s.value == nil {
			continue
		}
		if f := *s.value; !(f >= 0 && f <= 100) {
			v.add(p+"."+s.name, "must be a score from 0 to 100, not %s", fnum(f))
			ok = false
			continue
		}
		*s.dst = *s.value
	}
	if ok && marginal > pass {
		v.add(p, "marginalScore %s is above passScore %s", fnum(marginal), fnum(pass))
	}
	if c := j.Confidence; c != nil && !(*c > 0 && *c < 1) {
		v.add(p+".confidence", "must be between 0 and 1, such as 0.98, not %s", fnum(*c))
	}
	for group, w := range j.GroupWeights {
		if !(w >= 0 && !math.IsInf(w, 0)) {
			v.add(index(p+".groupWeights", group), "must be a finite number, 0 or more, not %s", fnum(w))
		}
	}
}

func metricUnit(name string) (unit, bool) {
	name = builtinName(name)
	for _, m := range builtinMetrics {
		if m.name == name {
			return m.unit, true
		}
	}
	return 0, false
}

func metricNameList() []string {
	names := make([]string, len(builtinMetrics))
	for i, m := range builtinMetrics {
		names[i] = m.name
	}
	return names
}

func metricNames() string { return strings.Join(metricNameList(), ", ") }
