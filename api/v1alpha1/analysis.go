package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnalysisSpec configures the checks that run while the canary serves
// traffic.
type AnalysisSpec struct {
	// Interval between two checks. Default: the strategy's interval, else 1m.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// FailureLimit is the default of every metric's failureLimit: how many
	// failed measurements a metric may have; one more fails the analysis.
	// Default 0.
	// +optional
	FailureLimit *int32 `json:"failureLimit,omitempty"`
	// Variables are available to query templates as {{ .Vars.NAME }}.
	// +optional
	Variables map[string]string `json:"variables,omitempty"`
	// Metrics are measured at every check.
	// +optional
	Metrics []MetricSpec `json:"metrics,omitempty"`
	// Sequential configures the continuous canary-vs-stable test of the
	// error rate on the built-in proxy's traffic, which can roll a clearly
	// worse canary back between checks. On by default.
	// +optional
	Sequential *SequentialSpec `json:"sequential,omitempty"`
	// ExpectedRequestsPerSecond is the traffic the service usually gets,
	// all versions together. pipit does not act on it: `pipit lint` uses
	// it to tell whether a stage sees enough requests to notice a worse
	// error rate, and `pipit status` shows it.
	// +optional
	ExpectedRequestsPerSecond *float64 `json:"expectedRequestsPerSecond,omitempty"`
	// Judge configures the score over metrics that have a compare section
	// (canary against stable, Kayenta style).
	// +optional
	Judge *JudgeSpec `json:"judge,omitempty"`
	// Goals are the requests that count as a conversion, for the builtin
	// metrics conversion-rate (the first goal) and conversion-rate:NAME.
	// The built-in proxy counts, per version, the distinct users who
	// reached it and those of them who sent a request matching a goal; it
	// needs a user key (spec.service.traffic.userKey) to tell users apart.
	// A flag rollout's goals have a name only: the application reports a
	// conversion event naming the goal its user reached.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Goals []Goal `json:"goals,omitempty"`
}

// MaxGoals bounds spec.analysis.goals: the proxy keeps one bit per goal
// for each user it tracks.
const MaxGoals = 16

// Goal is what counts as a conversion. Either a request: a user
// converts when they send one that matches every condition written, in
// the traffic rules' match syntax (see TrafficRule), counted by pipit's
// proxy; or counts the application exports to Prometheus (Prometheus),
// the only form in Kubernetes, where pipit's proxy carries no traffic.
// For a flag it is a name only.
//
// +kubebuilder:validation:XValidation:rule="!has(self.prometheus) || (!has(self.method) && !has(self.path) && !has(self.headers))",message="a goal is counted by prometheus or by request conditions (method, path, headers), not both"
type Goal struct {
	// Name names the goal in the metric conversion-rate:NAME.
	Name string `json:"name"`
	// Method is a condition on the request's method, such as POST.
	// +optional
	Method *StringMatch `json:"method,omitempty"`
	// Path is a condition on the request's path (decoded, without the
	// query), such as exact: /checkout/done.
	// +optional
	Path *StringMatch `json:"path,omitempty"`
	// Headers maps header names (any case) to conditions on their values.
	// +optional
	Headers map[string]StringMatch `json:"headers,omitempty"`
	// Prometheus counts the goal's users from the application's own
	// series instead of pipit's proxy; the request conditions are then
	// not set.
	// +optional
	Prometheus *PrometheusGoal `json:"prometheus,omitempty"`
}

// PrometheusGoal counts a goal's users of each version with two PromQL
// queries, run once for the canary (the treatment) and once for the
// stable version (the control) at every check. Each gives one number:
// the users since the experiment started (since the rollout started
// outside an experiment), which {{ .Elapsed }} spans, such as
// sum(increase(shop_visitors_total{service="web-{{ .Role }}"}[{{ .Elapsed }}])).
// The templates see the fields of a Prometheus metric's query.
type PrometheusGoal struct {
	// Address of the Prometheus server, such as http://prometheus:9090.
	// Default in Kubernetes: the controller's --prometheus-url; required
	// in standalone mode.
	// +optional
	Address string `json:"address,omitempty"`
	// Visitors is a Go template of the query counting the version's
	// users: those who could reach the goal.
	Visitors string `json:"visitors"`
	// Conversions is a Go template of the query counting those of them
	// who reached it.
	Conversions string `json:"conversions"`
	// Timeout of one query. Default 10s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Auth to send with every request.
	// +optional
	Auth *HTTPAuth `json:"auth,omitempty"`
	// Headers to send with every request.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// TLS options for an https address.
	// +optional
	TLS *TLSOptions `json:"tls,omitempty"`
}

// Provider is the Prometheus provider that runs the goal's queries,
// with query as its query.
func (g PrometheusGoal) Provider(query string) PrometheusProvider {
	return PrometheusProvider{Address: g.Address, Query: query, Timeout: g.Timeout, Auth: g.Auth, Headers: g.Headers, TLS: g.TLS}
}

// MetricSpec is one metric measured at every check, for the canary and,
// where the provider can, for the stable version over the same window.
//
// +kubebuilder:validation:XValidation:rule="!has(self.provider) || !has(self.templateRef)",message="set provider or templateRef, not both: a templated metric takes the template's provider"
type MetricSpec struct {
	// Name of the metric. Without a provider it names a builtin metric of
	// the traffic: request-success-rate, error-rate, request-count,
	// latency-mean, latency-p50, latency-p95, latency-p99 and
	// request-duration (p99, as Flagger names it), measured by pipit's
	// proxy, or in Kubernetes read from the controller's Prometheus
	// (--prometheus-url); conversion-rate (the share of users, in percent,
	// who reached the first goal since the canary started) and
	// conversion-rate:GOAL (that of goal GOAL), measured by pipit's proxy;
	// or, for process targets, cpu-usage (% of one core) and memory-usage
	// (% of the stated memory limit) of the version's processes.
	Name string `json:"name"`
	// Provider measures the metric; default the builtin metrics (see Name).
	// +optional
	Provider *MetricProvider `json:"provider,omitempty"`
	// TemplateRef measures the metric with a template's provider instead
	// of one written here; the template's thresholds, conditions and unit
	// are defaults that this metric's own fields override.
	// +optional
	TemplateRef *MetricTemplateRef `json:"templateRef,omitempty"`
	// Args are the values of {{ .Args.NAME }} in the provider's query,
	// URL and body; they override a template's defaults. Every argument
	// must be used, and every one used must have a value.
	// +optional
	Args map[string]string `json:"args,omitempty"`

	// ThresholdRange is the range the canary's value must stay in.
	// +optional
	ThresholdRange *ThresholdRange `json:"thresholdRange,omitempty"`
	// SuccessCondition is an expression (expr-lang) that must hold for the
	// measurement to succeed; it sees result (= canary), canary and stable.
	// Example: "canary <= stable * 1.1".
	// +optional
	SuccessCondition string `json:"successCondition,omitempty"`
	// FailureCondition is an expression that fails the measurement when it
	// holds. Example: "result > 0.05".
	// +optional
	FailureCondition string `json:"failureCondition,omitempty"`
	// Compare judges the canary's samples against the stable's over the
	// same window with a Mann-Whitney test (Kayenta style).
	// +optional
	Compare *CompareSpec `json:"compare,omitempty"`

	// FailureLimit is how many failed measurements are tolerated; one more
	// fails the analysis. Default: the analysis' failureLimit.
	// +optional
	FailureLimit *int32 `json:"failureLimit,omitempty"`
	// InconclusiveLimit is how many inconclusive measurements are
	// tolerated; one more waits for a person. Default 0 means no limit.
	// +optional
	InconclusiveLimit *int32 `json:"inconclusiveLimit,omitempty"`
	// ConsecutiveErrorLimit is how many measurements in a row may fail to be
	// taken (a query error, a timeout) before the analysis fails. Default 4.
	// +optional
	ConsecutiveErrorLimit *int32 `json:"consecutiveErrorLimit,omitempty"`
	// NoData says what a measurement without data means: hold (default:
	// wait, up to noDataTimeout, then fail), fail, or ignore (the metric
	// does not decide that check).
	// +optional
	NoData NoDataPolicy `json:"noData,omitempty"`
	// NoDataTimeout bounds the hold policy. Default 5m.
	// +optional
	NoDataTimeout *metav1.Duration `json:"noDataTimeout,omitempty"`
	// DryRun metrics are measured and reported but never decide.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// Unit is what the values of a metric with a provider are in, shown
	// after each of them for people: "ms", "%", "req/s". The built-in
	// metrics know their own. Default none.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Unit string `json:"unit,omitempty"`
}

// NoDataPolicy says what a measurement without data means.
// +kubebuilder:validation:Enum=hold;fail;ignore
type NoDataPolicy string

const (
	// NoDataHold waits for data, up to the metric's noDataTimeout.
	NoDataHold NoDataPolicy = "hold"
	// NoDataFail counts a measurement without data as failed.
	NoDataFail NoDataPolicy = "fail"
	// NoDataIgnore leaves the metric out of the check's decision.
	NoDataIgnore NoDataPolicy = "ignore"
)

// ThresholdRange bounds a metric's value; either end may be left open.
//
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="needs min or max"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || self.min <= self.max",message="min is above max, so no value passes"
type ThresholdRange struct {
	// +optional
	Min *float64 `json:"min,omitempty"`
	// +optional
	Max *float64 `json:"max,omitempty"`
}

// MetricProvider names where a metric is measured; exactly one is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.prometheus) != has(self.web)",message="set one of prometheus and web: a metric has one provider"
type MetricProvider struct {
	// +optional
	Prometheus *PrometheusProvider `json:"prometheus,omitempty"`
	// +optional
	Web *WebProvider `json:"web,omitempty"`
}

// PrometheusProvider runs a PromQL query over Prometheus' HTTP API.
type PrometheusProvider struct {
	// Address of the Prometheus server, such as http://127.0.0.1:9090.
	Address string `json:"address"`
	// Query is a Go template of a PromQL query giving one number. It sees
	// {{ .Rollout }}, {{ .Namespace }}, {{ .Version }}, {{ .Role }}
	// (canary or stable), {{ .Interval }} (as "60s"), {{ .Elapsed }} (the
	// time since the experiment, or else the rollout, started, as "3600s")
	// and {{ .Vars.NAME }}.
	// {{ .Args.NAME }} is the metric's argument NAME (see MetricSpec.Args).
	// It is run once for the canary and once for the stable version.
	Query string `json:"query"`
	// Timeout of one query. Default 10s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Auth to send with every request.
	// +optional
	Auth *HTTPAuth `json:"auth,omitempty"`
	// Headers to send with every request.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// TLS options for an https address.
	// +optional
	TLS *TLSOptions `json:"tls,omitempty"`
}

// WebProvider reads a number from a JSON endpoint.
type WebProvider struct {
	// URL is a Go template (same fields as a Prometheus query).
	URL string `json:"url"`
	// Method is GET (default) or POST.
	// +optional
	Method string `json:"method,omitempty"`
	// Body is a Go template sent with POST.
	// +optional
	Body string `json:"body,omitempty"`
	// JSONPath selects the value in the answer, such as {$.data.rate}.
	JSONPath string `json:"jsonPath"`
	// Timeout of one request. Default 10s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// +optional
	Auth *HTTPAuth `json:"auth,omitempty"`
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// +optional
	TLS *TLSOptions `json:"tls,omitempty"`
}

// HTTPAuth is a bearer token or basic auth. Secrets are read from files or
// environment variables so they stay out of rollout files and logs.
type HTTPAuth struct {
	// BearerTokenFile holds a bearer token.
	// +optional
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	// BearerTokenEnv names an environment variable holding a bearer token.
	// +optional
	BearerTokenEnv string `json:"bearerTokenEnv,omitempty"`
	// Basic auth; the password comes from a file or an environment variable.
	// +optional
	Basic *BasicAuth `json:"basic,omitempty"`
}

// BasicAuth is a user name and where to read its password.
type BasicAuth struct {
	Username string `json:"username"`
	// +optional
	PasswordFile string `json:"passwordFile,omitempty"`
	// +optional
	PasswordEnv string `json:"passwordEnv,omitempty"`
}

// TLSOptions configures TLS to a metrics server.
type TLSOptions struct {
	// CAFile verifies the server with this CA bundle instead of the system's.
	// +optional
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a client certificate.
	// +optional
	CertFile string `json:"certFile,omitempty"`
	// +optional
	KeyFile string `json:"keyFile,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify turns certificate checks off (tests only).
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// CompareSpec judges canary against stable samples (Kayenta style).
type CompareSpec struct {
	// Direction that is bad: increase, decrease or either (default).
	// +optional
	Direction string `json:"direction,omitempty"`
	// AllowedChange is the relative change of the mean tolerated in the bad
	// direction, such as 0.1 for 10%. Default 0.
	// +optional
	AllowedChange *float64 `json:"allowedChange,omitempty"`
	// Critical metrics fail the whole judgement when they fail.
	// +optional
	Critical bool `json:"critical,omitempty"`
	// Group of the metric for the weighted score. Default "default".
	// +optional
	Group string `json:"group,omitempty"`
}

// JudgeSpec sets the score thresholds and group weights of compared
// metrics.
type JudgeSpec struct {
	// PassScore: a score at or above it passes. Default 75.
	// +optional
	PassScore *float64 `json:"passScore,omitempty"`
	// MarginalScore: a score below it fails. Default 50; in between
	// the check is inconclusive.
	// +optional
	MarginalScore *float64 `json:"marginalScore,omitempty"`
	// GroupWeights weigh the groups in the score; groups not listed share
	// what is left equally.
	// +optional
	GroupWeights map[string]float64 `json:"groupWeights,omitempty"`
	// Confidence of the Mann-Whitney interval. Default 0.98.
	// +optional
	Confidence *float64 `json:"confidence,omitempty"`
}

// SequentialSpec configures the continuous error-rate test.
type SequentialSpec struct {
	// Enabled turns the test on or off. Default true.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// FalseAlarmRate bounds the probability that a canary no worse than
	// stable is ever rolled back by this test. Default 0.01.
	// +optional
	FalseAlarmRate *float64 `json:"falseAlarmRate,omitempty"`
}
