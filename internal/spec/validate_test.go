package spec

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func pct(f float64) *v1alpha1.Percent {
	p := v1alpha1.PercentOf(f)
	return &p
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func ptr[T any](v T) *T { return &v }

// validRollout is a rollout that passes validation; each case below breaks
// one thing in it.
func validRollout() *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.RolloutSpec{
			Service: &v1alpha1.ServiceSpec{
				Listen: "127.0.0.1:8080",
				Stable: v1alpha1.Upstream{URL: "http://127.0.0.1:9001"},
				Canary: &v1alpha1.Upstream{URL: "http://127.0.0.1:9002"},
			},
			Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{
				{SetWeight: pct(5)},
				{Pause: &v1alpha1.PauseStep{Duration: dur(time.Minute)}},
				{Analysis: &v1alpha1.AnalysisStep{}},
				{SetWeight: pct(50)},
			}},
			Analysis: &v1alpha1.AnalysisSpec{Metrics: []v1alpha1.MetricSpec{
				{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: ptr(99.0)}},
			}},
		},
	}
}

// promMetric is a valid metric measured by Prometheus.
func promMetric(name string) v1alpha1.MetricSpec {
	return v1alpha1.MetricSpec{Name: name, Provider: &v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusProvider{
		Address: "http://127.0.0.1:9090", Query: `sum(rate(http_requests_total{version="{{ .Version }}"}[1m]))`,
	}}}
}

// webMetric is a valid metric read from a JSON endpoint.
func webMetric(name string) v1alpha1.MetricSpec {
	return v1alpha1.MetricSpec{Name: name, Provider: &v1alpha1.MetricProvider{Web: &v1alpha1.WebProvider{
		URL: "http://127.0.0.1:9100/metrics/{{ .Role }}", JSONPath: "{$.value}",
	}}}
}

// refusal breaks a valid rollout one way, with the field Validate must
// name and part of its reason.
type refusal struct {
	name   string
	break_ func(r *v1alpha1.Rollout)
	field  string
	reason string
}

// checkRefusals breaks a rollout from base one way for each case, and
// checks that Validate refuses it for that reason alone.
func checkRefusals(t *testing.T, base func() *v1alpha1.Rollout, cases []refusal) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.break_(r)
			errs := Validate(r)
			if len(errs) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(errs), errs)
			}
			if e := errs[0]; e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("got %s: %s\nwant %s: …%s…", e.Field, e.Reason, tt.field, tt.reason)
			}
		})
	}
}

// refusals break validRollout one way each.
var refusals = []refusal{
	{"no apiVersion", func(r *v1alpha1.Rollout) { r.APIVersion = "" }, "apiVersion", "is required: pipit.dev/v1alpha1"},
	{"other apiVersion", func(r *v1alpha1.Rollout) { r.APIVersion = "argoproj.io/v1alpha1" }, "apiVersion", `must be pipit.dev/v1alpha1, not "argoproj.io/v1alpha1"`},
	{"other kind", func(r *v1alpha1.Rollout) { r.Kind = "Canary" }, "kind", `must be Rollout, not "Canary"`},
	{"no name", func(r *v1alpha1.Rollout) { r.Name = "" }, "metadata.name", "is required"},
	{"name not a DNS label", func(r *v1alpha1.Rollout) { r.Name = "web.app" }, "metadata.name", `"web.app" is not a valid name`},
	{"name too long", func(r *v1alpha1.Rollout) { r.Name = strings.Repeat("a", 64) }, "metadata.name", "is not a valid name"},
	{"bad namespace", func(r *v1alpha1.Rollout) { r.Namespace = "-x" }, "metadata.namespace", `"-x" is not a valid name`},
	{"no listen", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = "" }, "spec.service.listen", "is required"},
	{"listen without port", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = "127.0.0.1" }, "spec.service.listen", `"127.0.0.1" is not host:port`},
	{"listen port too high", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = ":70000" }, "spec.service.listen", `port "70000" must be a number from 1 to 65535`},
	{"listen named port", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = "localhost:http" }, "spec.service.listen", `port "http" must be a number`},
	{"listen bad host", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = "my_host:80" }, "spec.service.listen", `host "my_host" is neither an IP address nor a host name`},
	{"no stable url", func(r *v1alpha1.Rollout) { r.Spec.Service.Stable.URL = "" }, "spec.service.stable.url", "is required"},
	{"relative url", func(r *v1alpha1.Rollout) { r.Spec.Service.Stable.URL = "127.0.0.1:9001" }, "spec.service.stable.url", "is not a valid URL"},
	{"url without scheme", func(r *v1alpha1.Rollout) { r.Spec.Service.Stable.URL = "/app" }, "spec.service.stable.url", `must be an absolute http or https URL such as http://127.0.0.1:9001, not "/app"`},
	{"url hides its password", func(r *v1alpha1.Rollout) { r.Spec.Service.Canary.URL = "ftp://me:hunter2@host" }, "spec.service.canary.url", `not "ftp://me:xxxxx@host"`},
	{"url without host", func(r *v1alpha1.Rollout) { r.Spec.Service.Canary.URL = "http:///x" }, "spec.service.canary.url", `"http:///x" has no host`},
	{"canary without url", func(r *v1alpha1.Rollout) { r.Spec.Service.Canary.URL = "" }, "spec.service.canary.url", "is required"},
	{"url and process", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable.Process = &v1alpha1.ProcessSpec{Command: "app"}
	}, "spec.service.stable", "set one of url, urls and process, not two"},
	{"url and urls", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable.URLs = []string{"http://10.0.0.7:8080"}
	}, "spec.service.stable", "set one of url, urls and process, not two"},
	{"bad entry in urls", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable = v1alpha1.Upstream{URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080", "10.0.0.9:8080"}}
	}, "spec.service.stable.urls[2]", "is not a valid URL"},
	{"url without host in urls", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Canary = &v1alpha1.Upstream{URLs: []string{"http:///x"}}
	}, "spec.service.canary.urls[0]", `"http:///x" has no host`},
	{"duplicate in urls", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable = v1alpha1.Upstream{URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080", "http://10.0.0.7:8080"}}
	}, "spec.service.stable.urls[2]", `"http://10.0.0.7:8080" is listed already, as spec.service.stable.urls[0]`},
	{"empty urls", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable = v1alpha1.Upstream{URLs: []string{}}
	}, "spec.service.stable.urls", "must list at least one URL"},
	{"too many urls", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable = v1alpha1.Upstream{URLs: make([]string, 65)}
		for i := range r.Spec.Service.Stable.URLs {
			r.Spec.Service.Stable.URLs[i] = fmt.Sprintf("http://10.0.0.%d:8080", i)
		}
	}, "spec.service.stable.urls", "lists 65 URLs, more than the 64 allowed"},
	{"urls and process", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Canary = &v1alpha1.Upstream{Version: "v2", URLs: []string{"http://10.0.0.7:8080"}, Process: &v1alpha1.ProcessSpec{Command: "app"}}
	}, "spec.service.canary", "set one of url, urls and process, not two"},
	{"process without version", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable = v1alpha1.Upstream{Process: &v1alpha1.ProcessSpec{Command: "app"}}
		r.Spec.Service.Canary = &v1alpha1.Upstream{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app"}}
	}, "spec.service.stable.version", "is required with process"},
	{"bad process", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Stable = v1alpha1.Upstream{Version: "v1", Process: &v1alpha1.ProcessSpec{Command: "app", Args: []string{"{{ .Prot }}"}}}
		r.Spec.Service.Canary = &v1alpha1.Upstream{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app"}}
	}, "spec.service.stable.process.args[0]", "can't evaluate field Prot"},
	{"trusted proxy prefix too long", func(r *v1alpha1.Rollout) {
		r.Spec.Service.TrustedProxies = []string{"10.0.0.1", "10.0.0.0/33"}
	}, "spec.service.trustedProxies[1]", `"10.0.0.0/33" is not an IP address or CIDR prefix`},
	{"trusted proxy host name", func(r *v1alpha1.Rollout) {
		r.Spec.Service.TrustedProxies = []string{"lb.example.com"}
	}, "spec.service.trustedProxies[0]", `"lb.example.com" is not an IP address or CIDR prefix`},
	{"trusted proxy with a zone", func(r *v1alpha1.Rollout) {
		r.Spec.Service.TrustedProxies = []string{"fe80::1%eth0"}
	}, "spec.service.trustedProxies[0]", `"fe80::1%eth0" has an IPv6 zone; write the address without %eth0`},
	{"no connections", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Limits = &v1alpha1.ListenerLimits{MaxConnections: ptr(int32(0))}
	}, "spec.service.limits.maxConnections", "must be positive, not 0"},
	{"negative connections per client", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Limits = &v1alpha1.ListenerLimits{MaxConnectionsPerClient: ptr(int32(-1))}
	}, "spec.service.limits.maxConnectionsPerClient", "must be positive, not -1"},
	{"more connections per client than in all", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Limits = &v1alpha1.ListenerLimits{MaxConnections: ptr(int32(100)), MaxConnectionsPerClient: ptr(int32(200))}
	}, "spec.service.limits.maxConnectionsPerClient", "is 200, more than maxConnections (100)"},
	{"mixed kinds", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Canary = &v1alpha1.Upstream{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app"}}
	}, "spec.service.canary", "must be of the same kind as the stable"},
	{"cpu-usage of URLs", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].Name = "cpu-usage"
	}, "spec.analysis.metrics[0].name", "cpu-usage is measured on the processes pipit runs, and spec.service.stable is a URL"},
	{"memory-usage without a limit", func(r *v1alpha1.Rollout) {
		limit := int64(1 << 30)
		r.Spec.Service.Stable = v1alpha1.Upstream{Version: "v1", Process: &v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: &limit}}
		r.Spec.Service.Canary = &v1alpha1.Upstream{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app"}}
		r.Spec.Analysis.Metrics[0] = v1alpha1.MetricSpec{Name: "memory-usage", ThresholdRange: &v1alpha1.ThresholdRange{Max: ptr(80.0)}}
	}, "spec.analysis.metrics[0].name", "spec.service.canary.process states no memoryLimitBytes"},
	{"health path", func(r *v1alpha1.Rollout) { r.Spec.Service.HealthCheck = &v1alpha1.HealthCheck{Path: "health"} }, "spec.service.healthCheck.path", "must start with /"},
	{"health interval", func(r *v1alpha1.Rollout) {
		r.Spec.Service.HealthCheck = &v1alpha1.HealthCheck{Interval: dur(0)}
	}, "spec.service.healthCheck.interval", "must be positive, not 0s"},
	{"health timeout", func(r *v1alpha1.Rollout) {
		r.Spec.Service.HealthCheck = &v1alpha1.HealthCheck{Timeout: dur(-time.Second)}
	}, "spec.service.healthCheck.timeout", "must be positive, not -1s"},
	{"health threshold", func(r *v1alpha1.Rollout) {
		r.Spec.Service.HealthCheck = &v1alpha1.HealthCheck{FailureThreshold: -1}
	}, "spec.service.healthCheck.failureThreshold", "must not be negative, not -1"},
	{"no strategy", func(r *v1alpha1.Rollout) { r.Spec.Strategy = v1alpha1.Strategy{} }, "spec.strategy", "needs steps, a preset, blueGreen, an experiment, or the shorthand stepWeight or stepWeights"},
	{"strategy interval", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Interval = dur(0) }, "spec.strategy.interval", "must be positive"},
	{"steps and shorthand", func(r *v1alpha1.Rollout) { r.Spec.Strategy.StepWeight = pct(5) }, "spec.strategy", "use steps or the shorthand"},
	{"step of no kind", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps[1] = v1alpha1.Step{} }, "spec.strategy.steps[1]", "a step needs one of setWeight, pause, analysis or approval"},
	{"step of two kinds", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy.Steps[1].Analysis = &v1alpha1.AnalysisStep{}
	}, "spec.strategy.steps[1]", "a step sets pause and analysis; give each its own step"},
	{"weight above 100", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps[3].SetWeight = pct(100.5) }, "spec.strategy.steps[3].setWeight", "must be from 0 to 100, not 100.5"},
	{"negative weight", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps[0].SetWeight = pct(-1) }, "spec.strategy.steps[0].setWeight", "must be from 0 to 100, not -1"},
	{"weights go down", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps[3].SetWeight = pct(2.5) }, "spec.strategy.steps[3].setWeight", "weights must not go down: 2.5 after 5"},
	{"zero pause", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps[1].Pause.Duration = dur(0) }, "spec.strategy.steps[1].pause.duration", "must be positive; leave it out to wait for `pipit promote`"},
	{"negative checks", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps[2].Analysis.Checks = -1 }, "spec.strategy.steps[2].analysis.checks", "must not be negative"},
	{"too many steps", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy.Steps = make([]v1alpha1.Step, maxSteps+1)
		for i := range r.Spec.Strategy.Steps {
			r.Spec.Strategy.Steps[i].SetWeight = pct(1)
		}
	}, "spec.strategy.steps", "has 1001 steps; at most 1000 are allowed"},
	{"stepWeight zero", func(r *v1alpha1.Rollout) { r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(0)} }, "spec.strategy.stepWeight", "must be more than 0 and at most 100, not 0"},
	{"maxWeight above 100", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(10), MaxWeight: pct(120)}
	}, "spec.strategy.maxWeight", "must be more than 0 and at most 100, not 120"},
	{"maxWeight alone", func(r *v1alpha1.Rollout) { r.Spec.Strategy = v1alpha1.Strategy{MaxWeight: pct(50)} }, "spec.strategy.maxWeight", "needs stepWeight"},
	{"stepWeight above default maxWeight", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(60)}
	}, "spec.strategy.stepWeight", "stepWeight 60 is above the default maxWeight 50"},
	{"stepWeight above maxWeight", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(30), MaxWeight: pct(20)}
	}, "spec.strategy.stepWeight", "stepWeight 30 is above maxWeight 20"},
	{"shorthand of too many steps", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(0.01), MaxWeight: pct(100)}
	}, "spec.strategy.stepWeight", "stepWeight 0.01 up to maxWeight 100 makes 10000 steps; at most 1000 are allowed"},
	{"stepWeights and stepWeight", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(5), StepWeights: []v1alpha1.Percent{1000}}
	}, "spec.strategy.stepWeights", "use stepWeights, or stepWeight with maxWeight, not both"},
	{"stepWeights not ascending", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeights: []v1alpha1.Percent{1000, 5000, 5000}}
	}, "spec.strategy.stepWeights[2]", "stepWeights must go up: 5 after 5"},
	{"stepWeights zero", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeights: []v1alpha1.Percent{0, 5000}}
	}, "spec.strategy.stepWeights[0]", "must be more than 0 and at most 100, not 0"},
	{"stepWeights above 100", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeights: []v1alpha1.Percent{5000, 100001}}
	}, "spec.strategy.stepWeights[1]", "must be more than 0 and at most 100, not 100.001"},
	{"analysis interval", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Interval = dur(0) }, "spec.analysis.interval", "must be positive"},
	{"failure limit", func(r *v1alpha1.Rollout) { r.Spec.Analysis.FailureLimit = ptr(int32(-2)) }, "spec.analysis.failureLimit", "must not be negative, not -2"},
	{"metric without name", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].Name = "" }, "spec.analysis.metrics[0].name", "is required: one of request-success-rate, error-rate"},
	{"metric misspelt", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].Name = "error_rate" }, "spec.analysis.metrics[0].name", `unknown metric "error_rate"; did you mean "error-rate"?`},
	{"metric unknown", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].Name = "cpu" }, "spec.analysis.metrics[0].name", `unknown metric "cpu"; the built-in metrics are request-success-rate, error-rate, request-count, latency-mean, latency-p50, latency-p95, latency-p99, request-duration`},
	{"metric twice", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics = append(r.Spec.Analysis.Metrics, r.Spec.Analysis.Metrics[0])
	}, "spec.analysis.metrics[1].name", `metric "request-success-rate" is already listed as metrics[0]`},
	{"empty range", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].ThresholdRange = &v1alpha1.ThresholdRange{} }, "spec.analysis.metrics[0].thresholdRange", "needs min or max"},
	{"min above max", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].ThresholdRange.Max = ptr(98.5) }, "spec.analysis.metrics[0].thresholdRange", "min 99 is above max 98.5, so no value passes"},
	{"rate above 100", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].ThresholdRange.Min = ptr(990.0) }, "spec.analysis.metrics[0].thresholdRange.min", "request-success-rate is a percentage from 0 to 100; 990 is outside it"},
	{"negative latency", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = v1alpha1.MetricSpec{Name: "latency-p95", ThresholdRange: &v1alpha1.ThresholdRange{Max: ptr(-1.0)}}
	}, "spec.analysis.metrics[0].thresholdRange.max", "latency-p95 cannot be negative, so -1 is never reached"},
	{"NaN bound", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].ThresholdRange.Min = ptr(math.NaN()) }, "spec.analysis.metrics[0].thresholdRange.min", "must be a finite number"},
	{"custom metric without provider", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].Name = "queue-depth" }, "spec.analysis.metrics[0].name", "other metrics need a provider"},
	{"provider metric without name", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = promMetric("")
	}, "spec.analysis.metrics[0].name", "is required"},
	{"empty provider", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].Provider = &v1alpha1.MetricProvider{}
	}, "spec.analysis.metrics[0].provider", "needs prometheus or web"},
	{"two providers", func(r *v1alpha1.Rollout) {
		m := promMetric("m")
		m.Provider.Web = webMetric("m").Provider.Web
		r.Spec.Analysis.Metrics[0] = m
	}, "spec.analysis.metrics[0].provider", "sets prometheus and web; a metric has one provider"},
	{"prometheus without address", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = promMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Prometheus.Address = ""
	}, "spec.analysis.metrics[0].provider.prometheus.address", "is required"},
	{"prometheus address not a URL", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = promMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Prometheus.Address = "prometheus:9090"
	}, "spec.analysis.metrics[0].provider.prometheus.address", `must be an absolute http or https URL`},
	{"prometheus without query", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = promMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Prometheus.Query = " "
	}, "spec.analysis.metrics[0].provider.prometheus.query", "is required"},
	{"prometheus timeout", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = promMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Prometheus.Timeout = dur(0)
	}, "spec.analysis.metrics[0].provider.prometheus.timeout", "must be positive"},
	{"two kinds of auth", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = promMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Prometheus.Auth = &v1alpha1.HTTPAuth{BearerTokenEnv: "T", Basic: &v1alpha1.BasicAuth{Username: "u"}}
	}, "spec.analysis.metrics[0].provider.prometheus.auth", "needs exactly one of bearerTokenFile, bearerTokenEnv and basic"},
	{"basic auth without user", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.Auth = &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{PasswordEnv: "P"}}
	}, "spec.analysis.metrics[0].provider.web.auth.basic.username", "is required"},
	{"basic auth with two passwords", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.Auth = &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "u", PasswordEnv: "P", PasswordFile: "/p"}}
	}, "spec.analysis.metrics[0].provider.web.auth.basic", "sets passwordFile and passwordEnv; use one"},
	{"client certificate without key", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.TLS = &v1alpha1.TLSOptions{CertFile: "/c.pem"}
	}, "spec.analysis.metrics[0].provider.web.tls", "a client certificate needs both certFile and keyFile"},
	{"web URL", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.URL = "ftp://x"
	}, "spec.analysis.metrics[0].provider.web.url", "must start with http:// or https://"},
	{"web method", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.Method = "PUT"
	}, "spec.analysis.metrics[0].provider.web.method", `must be GET or POST, not "PUT"`},
	{"web body with GET", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.Body = "{}"
	}, "spec.analysis.metrics[0].provider.web.body", "is sent only with method POST"},
	{"web without jsonPath", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = webMetric("m")
		r.Spec.Analysis.Metrics[0].Provider.Web.JSONPath = ""
	}, "spec.analysis.metrics[0].provider.web.jsonPath", "is required"},
	{"condition that does not parse", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].SuccessCondition = "canary <="
	}, "spec.analysis.metrics[0].successCondition", "is not a valid condition over result, canary and stable: "},
	{"condition on an unknown name", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].FailureCondition = "cnary > 1"
	}, "spec.analysis.metrics[0].failureCondition", "is not a valid condition"},
	{"condition that is not true or false", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].FailureCondition = "canary + 1"
	}, "spec.analysis.metrics[0].failureCondition", "is not a valid condition"},
	{"condition too long", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].SuccessCondition = strings.Repeat("(", 5000)
	}, "spec.analysis.metrics[0].successCondition", "is 5000 characters long; a condition may have at most 1024"},
	{"compare direction", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].Compare = &v1alpha1.CompareSpec{Direction: "up"}
	}, "spec.analysis.metrics[0].compare.direction", `must be increase, decrease or either, not "up"`},
	{"compare request count", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0] = v1alpha1.MetricSpec{Name: "request-count", Compare: &v1alpha1.CompareSpec{}}
	}, "spec.analysis.metrics[0].compare", "request-count cannot be compared"},
	{"compare allowed change", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].Compare = &v1alpha1.CompareSpec{AllowedChange: ptr(-0.1)}
	}, "spec.analysis.metrics[0].compare.allowedChange", "must be a finite number, 0 or more"},
	{"failure limit on a compared metric", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].Compare = &v1alpha1.CompareSpec{}
		r.Spec.Analysis.Metrics[0].FailureLimit = ptr(int32(2))
	}, "spec.analysis.metrics[0].failureLimit", "does not apply to a compared metric"},
	{"metric failure limit", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].FailureLimit = ptr(int32(-1)) }, "spec.analysis.metrics[0].failureLimit", "must not be negative, not -1"},
	{"inconclusive limit", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].InconclusiveLimit = ptr(int32(-1)) }, "spec.analysis.metrics[0].inconclusiveLimit", "must not be negative"},
	{"consecutive error limit", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Metrics[0].ConsecutiveErrorLimit = ptr(int32(-3))
	}, "spec.analysis.metrics[0].consecutiveErrorLimit", "must not be negative, not -3"},
	{"no-data policy", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].NoData = "skip" }, "spec.analysis.metrics[0].noData", `must be hold, fail or ignore, not "skip"`},
	{"no-data timeout", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[0].NoDataTimeout = dur(0) }, "spec.analysis.metrics[0].noDataTimeout", "must be positive"},
	{"false alarm rate", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Sequential = &v1alpha1.SequentialSpec{FalseAlarmRate: ptr(1.0)}
	}, "spec.analysis.sequential.falseAlarmRate", "must be a probability between 0 and 1, such as 0.01, not 1"},
	{"no expected traffic", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.ExpectedRequestsPerSecond = ptr(0.0)
	}, "spec.analysis.expectedRequestsPerSecond", "must be more than 0, not 0"},
	{"pass score", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Judge = &v1alpha1.JudgeSpec{PassScore: ptr(120.0)} }, "spec.analysis.judge.passScore", "must be a score from 0 to 100, not 120"},
	{"marginal score above the default pass score", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Judge = &v1alpha1.JudgeSpec{MarginalScore: ptr(80.0)}
	}, "spec.analysis.judge", "marginalScore 80 is above passScore 75"},
	{"confidence", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Judge = &v1alpha1.JudgeSpec{Confidence: ptr(98.0)} }, "spec.analysis.judge.confidence", "must be between 0 and 1, such as 0.98, not 98"},
	{"group weight", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Judge = &v1alpha1.JudgeSpec{GroupWeights: map[string]float64{"latency": -1}}
	}, "spec.analysis.judge.groupWeights[latency]", "must be a finite number, 0 or more, not -1"},
	{"decision", func(r *v1alpha1.Rollout) { r.Spec.Decision = "auto" }, "spec.decision", `must be automatic, manual or hybrid, not "auto"`},
	{"progress deadline", func(r *v1alpha1.Rollout) { r.Spec.ProgressDeadline = dur(0) }, "spec.progressDeadline", "must be positive, not 0s"},
}

func TestValidateRefuses(t *testing.T) { checkRefusals(t, validRollout, refusals) }

func TestValidateReportsEveryProblem(t *testing.T) {
	r := validRollout()
	r.Name = ""
	r.Spec.Service.Listen = "nowhere"
	r.Spec.Decision = "later"
	errs := Validate(r)
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	if got, want := strings.Join(fields, " "), "metadata.name spec.service.listen spec.decision"; got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}
	if Validate(nil).Err() == nil {
		t.Error("nil rollout accepted")
	}
}

// acceptedChanges turn validRollout into other valid rollouts, each with the steps it resolves to.
var acceptedChanges = []struct {
	name   string
	change func(r *v1alpha1.Rollout)
	steps  int
}{
	{"as is", func(*v1alpha1.Rollout) {}, 4},
	{"setWeight 0 and 100, indefinite pause", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy.Steps = []v1alpha1.Step{{SetWeight: pct(0)}, {Pause: &v1alpha1.PauseStep{}}, {SetWeight: pct(0.001)}, {SetWeight: pct(100)}}
	}, 4},
	{"stepWeight without maxWeight", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(20)}
	}, 6},
	{"stepWeight that does not divide maxWeight", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{Interval: dur(time.Minute), StepWeight: pct(30), MaxWeight: pct(100)}
	}, 8},
	{"shorthand of exactly the most steps", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeight: pct(0.1), MaxWeight: pct(100)}
	}, 2 * maxSteps},
	{"stepWeights", func(r *v1alpha1.Rollout) {
		r.Spec.Strategy = v1alpha1.Strategy{StepWeights: []v1alpha1.Percent{100, 500, 100000}}
	}, 6},
	{"every decision and no analysis", func(r *v1alpha1.Rollout) {
		r.Spec.Decision = v1alpha1.DecisionHybrid
		r.Spec.Analysis = nil
	}, 4},
	{"other listen and URL forms", func(r *v1alpha1.Rollout) {
		r.Spec.Service.Listen = ":0"
		r.Spec.Service.Stable.URL = "https://stable.example.internal/base"
		r.Spec.Service.Canary.URL = "http://[::1]:9002"
		r.Namespace = "shop"
	}, 4},
	{"IPv6 listen", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = "[::1]:8080" }, 4},
	{"host name listen", func(r *v1alpha1.Rollout) { r.Spec.Service.Listen = "localhost:8080" }, 4},
	{"listener settings", func(r *v1alpha1.Rollout) {
		r.Spec.Service.VersionHeader = ptr(false)
		r.Spec.Service.TrustedProxies = []string{"10.0.0.7", "10.0.0.1/8", "fd00::/8", "::ffff:192.0.2.1"}
		r.Spec.Service.Limits = &v1alpha1.ListenerLimits{MaxConnections: ptr(int32(1)), MaxConnectionsPerClient: ptr(int32(1))}
	}, 4},
	{"metrics of every provider and every analysis option", func(r *v1alpha1.Rollout) {
		prom, web := promMetric("queue-depth"), webMetric("p99-from-apm")
		prom.Provider.Prometheus.Auth = &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "u", PasswordFile: "/run/secrets/p"}}
		prom.Provider.Prometheus.TLS = &v1alpha1.TLSOptions{CertFile: "/c.pem", KeyFile: "/k.pem"}
		prom.ThresholdRange = &v1alpha1.ThresholdRange{Min: ptr(-5.0)}
		prom.NoData, prom.NoDataTimeout = v1alpha1.NoDataFail, dur(time.Minute)
		web.Provider.Web.Method, web.Provider.Web.Body = "POST", `{"role": "{{ .Role }}"}`
		web.SuccessCondition = "canary <= stable * 1.1"
		web.FailureCondition = "result > 0.05"
		web.Compare = &v1alpha1.CompareSpec{Direction: "increase", AllowedChange: ptr(0.1), Critical: true}
		r.Spec.Analysis = &v1alpha1.AnalysisSpec{
			Interval: dur(30 * time.Second), FailureLimit: ptr(int32(1)),
			Variables:  map[string]string{"service": "checkout"},
			Metrics:    []v1alpha1.MetricSpec{prom, web},
			Sequential: &v1alpha1.SequentialSpec{Enabled: ptr(false), FalseAlarmRate: ptr(0.05)},
			Judge: &v1alpha1.JudgeSpec{PassScore: ptr(90.0), MarginalScore: ptr(90.0), Confidence: ptr(0.95),
				GroupWeights: map[string]float64{"latency": 2}},
		}
	}, 4},
	{"every metric", func(r *v1alpha1.Rollout) {
		limit := int64(256 << 20)
		r.Spec.Service.Stable = v1alpha1.Upstream{Version: "v1", Process: &v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: &limit}}
		r.Spec.Service.Canary = &v1alpha1.Upstream{Version: "v2", Process: &v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: &limit}}
		r.Spec.Analysis.Metrics = nil
		r.Spec.Service.Traffic = &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Cookie: "uid"}}}
		r.Spec.Analysis.Goals = []v1alpha1.Goal{{Name: "buy", Path: &v1alpha1.StringMatch{Prefix: "/buy"}}}
		for _, m := range builtinMetrics {
			r.Spec.Analysis.Metrics = append(r.Spec.Analysis.Metrics, v1alpha1.MetricSpec{Name: m.name,
				ThresholdRange: &v1alpha1.ThresholdRange{Min: ptr(0.0), Max: ptr(100.0)}})
		}
	}, 4},
}

// TestValidRolloutsResolve checks the promise Resolve makes: it succeeds on
// every rollout validation accepts, including the edge cases.
func TestValidRolloutsResolve(t *testing.T) {
	for _, tt := range acceptedChanges {
		t.Run(tt.name, func(t *testing.T) {
			r := validRollout()
			tt.change(r)
			if errs := Validate(r); len(errs) > 0 {
				t.Fatalf("refused: %v", errs)
			}
			p, err := Resolve(&r.Spec)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if len(p.Steps) != tt.steps {
				t.Errorf("%d steps, want %d", len(p.Steps), tt.steps)
			}
		})
	}
}

func TestTrustedProxyCanonicalForm(t *testing.T) {
	tests := map[string]string{
		"10.0.0.7":             "10.0.0.7/32",
		"10.0.0.1/8":           "10.0.0.0/8",
		"2001:db8::1":          "2001:db8::1/128",
		"2001:db8::1/32":       "2001:db8::/32",
		"::ffff:192.0.2.1":     "192.0.2.1/32",
		"::ffff:192.0.2.0/120": "192.0.2.0/24",
		"0.0.0.0/0":            "0.0.0.0/0",
	}
	for in, want := range tests {
		p, err := TrustedProxy(in)
		if err != nil || p.String() != want {
			t.Errorf("TrustedProxy(%q) = %s, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "10.0.0.256", "10.0.0.0/", "/8", "010.0.0.1", "fe80::1%eth0", "fe80::/64%eth0"} {
		if p, err := TrustedProxy(in); err == nil {
			t.Errorf("TrustedProxy(%q) = %s, want an error", in, p)
		}
	}
}
