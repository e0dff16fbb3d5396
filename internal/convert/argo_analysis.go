package convert

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis/condition"
)

// argoArg is an argument of an Argo template, such as {{args.service-name}}.
var argoArg = regexp.MustCompile(`\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}`)

// argoFirstResult is how Argo conditions read a Prometheus vector's first
// value; pipit's result is that number.
var argoFirstResult = regexp.MustCompile(`result\s*\[\s*0\s*\]`)

// argoAnalysis converts an analysis of an Argo Rollout (its templates and
// arguments) into metrics, with the number of measurements its count asks
// for (at least 1) and the shortest interval of its metrics.
func (c *converter) argoAnalysis(a field, r *v1alpha1.Rollout) ([]v1alpha1.MetricSpec, int32, *metav1.Duration) {
	args := argoArgs(a.get("args"))
	dry := map[string]bool{}
	for _, d := range a.get("dryRun").items() {
		dry[d.get("metricName").str()] = true
	}
	a.drop("measurementRetention", "pipit keeps the last measurements of each metric in its status")
	var metrics []v1alpha1.MetricSpec
	var checks int32 = 1
	var interval *metav1.Duration
	for _, t := range a.get("templates").items() {
		kind := "AnalysisTemplate"
		if cluster, _ := t.get("clusterScope").bool(); cluster {
			kind = "ClusterAnalysisTemplate"
		}
		name := t.get("templateName").str()
		td := c.template(kind, r.Namespace, name)
		if td == nil {
			t.noteHere(fmt.Sprintf("%s %s is not in the input; give it with the Rollout (pipit convert templates.yaml rollout.yaml); its metrics are not carried over", kind, name))
			continue
		}
		for _, m := range c.argoTemplate(td, kind, r.Namespace, args, dry) {
			metrics = append(metrics, m.spec)
			checks = max(checks, m.count)
			if m.interval != nil && (interval == nil || m.interval.Duration < interval.Duration) {
				interval = m.interval
			}
		}
	}
	return metrics, checks, interval
}

// argoArgs reads the arguments given to templates; those taken from a
// Secret or a field of the pod are left out with a note.
func argoArgs(f field) map[string]string {
	out := map[string]string{}
	for _, a := range f.items() {
		name := a.get("name").str()
		if v := a.get("value"); v.ok() {
			out[name] = v.str()
		}
		a.drop("valueFrom", "pipit has no value taken from a Secret or a field at run time; metrics using this argument are not carried over")
	}
	return out
}

// argoMetric is one converted metric of an Argo template.
type argoMetric struct {
	spec     v1alpha1.MetricSpec
	count    int32
	interval *metav1.Duration
	// raw is the provider with the arguments as the template wrote them.
	raw *v1alpha1.MetricProvider
}

// argoTemplate converts the metrics of an analysis template of kind, its
// own argument defaults overridden by the rollout's arguments, each into
// a metric of a pipit template where it can (see argoTemplated).
func (c *converter) argoTemplate(t *doc, kind, namespace string, given map[string]string, dry map[string]bool) []argoMetric {
	s := t.top().get("spec")
	defaults := argoArgs(s.get("args"))
	args := maps.Clone(defaults)
	maps.Copy(args, given)
	pipitKind := v1alpha1.KindMetricTemplate
	if kind == "ClusterAnalysisTemplate" {
		pipitKind, namespace = v1alpha1.KindClusterMetricTemplate, ""
	}
	for _, d := range s.get("dryRun").items() {
		dry[d.get("metricName").str()] = true
	}
	s.drop("measurementRetention", "pipit keeps the last measurements of each metric in its status")
	var out []argoMetric
	metrics := s.get("metrics").items()
	for _, m := range metrics {
		if am, ok := c.argoMetric(m, args); ok {
			am.spec.DryRun = dry[am.spec.Name] || dry["*"]
			c.argoTemplated(&am, t, pipitKind, namespace, len(metrics), defaults, given)
			out = append(out, am)
		}
	}
	return out
}

// argoMetric converts one metric of an Argo template; false, with a
// note, when its provider or conditions have no pipit equivalent.
func (c *converter) argoMetric(m field, args map[string]string) (argoMetric, bool) {
	am := argoMetric{spec: v1alpha1.MetricSpec{Name: m.get("name").str()}, count: 1}
	var missing []string
	ms := &am.spec
	am.interval = m.get("interval").duration(false)
	if n, ok := m.get("count").int(); ok && n > 0 {
		am.count = int32(n)
	}
	for key, dst := range map[string]**int32{"failureLimit": &ms.FailureLimit, "inconclusiveLimit": &ms.InconclusiveLimit, "consecutiveErrorLimit": &ms.ConsecutiveErrorLimit} {
		if n, ok := m.get(key).int(); ok && n >= 0 {
			v := int32(n)
			*dst = &v
		} else if ok {
			m.get(key).noteHere("a negative limit (no limit) has no pipit equivalent; left at pipit's default")
		}
	}
	m.drop("initialDelay", "pipit's first check comes one interval after the canary gets traffic")
	for key, dst := range map[string]*string{"successCondition": &ms.SuccessCondition, "failureCondition": &ms.FailureCondition} {
		f := m.get(key)
		if !f.ok() {
			continue
		}
		*dst = argoFirstResult.ReplaceAllString(substitute(f.str(), args, &missing), "result")
		if err := condition.Compile(*dst); err != nil && len(missing) == 0 {
			msg, _, _ := strings.Cut(err.Error(), "\n")
			f.noteHere(fmt.Sprintf("is not a condition pipit can evaluate (%s: it sees result, canary and stable as numbers); the metric is not carried over", msg))
			m.whole()
			return am, false
		}
	}
	p := m.get("provider")
	prom, web := p.get("prometheus"), p.get("web")
	switch {
	case prom.ok():
		ms.Provider = &v1alpha1.MetricProvider{Prometheus: argoPrometheus(prom)}
	case web.ok():
		ms.Provider = &v1alpha1.MetricProvider{Web: argoWeb(web)}
	default:
		p.whole()
		p.noteHere(fmt.Sprintf("%s: pipit reads metrics from Prometheus and JSON web endpoints only; metric %q is not carried over", strings.Join(p.keys(), ", "), ms.Name))
		m.whole()
		return am, false
	}
	am.raw = ms.Provider.DeepCopy()
	if substituteArgs(ms.Provider, args, &missing); len(missing) > 0 {
		m.whole()
		m.noteHere(fmt.Sprintf("metric %q uses %s, which has no value; not carried over", ms.Name, strings.Join(missing, ", ")))
		return am, false
	}
	return am, true
}

// argoPrometheus converts Argo's Prometheus provider.
func argoPrometheus(f field) *v1alpha1.PrometheusProvider {
	p := &v1alpha1.PrometheusProvider{Address: f.get("address").str(), Query: f.get("query").str(), Timeout: f.get("timeout").duration(true)}
	p.Headers = argoHeaders(f.get("headers"))
	if insecure, _ := f.get("insecure").bool(); insecure {
		p.TLS = &v1alpha1.TLSOptions{InsecureSkipVerify: true}
	}
	f.drop("authentication", "pipit sends a bearer token or basic auth read from a file or the environment (provider.prometheus.auth), not SigV4 or OAuth2")
	return p
}

// argoWeb converts Argo's web provider.
func argoWeb(f field) *v1alpha1.WebProvider {
	w := &v1alpha1.WebProvider{URL: f.get("url").str(), Method: f.get("method").str(), Body: f.get("body").str(), JSONPath: f.get("jsonPath").str()}
	w.Timeout = f.get("timeoutSeconds").duration(true)
	w.Headers = argoHeaders(f.get("headers"))
	var body any
	if f.get("jsonBody").decode(&body) {
		b, _ := json.Marshal(body)
		w.Body = string(b)
	}
	if insecure, _ := f.get("insecure").bool(); insecure {
		w.TLS = &v1alpha1.TLSOptions{InsecureSkipVerify: true}
	}
	return w
}

// argoHeaders reads Argo's list of key and value pairs.
func argoHeaders(f field) map[string]string {
	if !f.ok() {
		return nil
	}
	out := map[string]string{}
	for _, h := range f.items() {
		out[h.get("key").str()] = h.get("value").str()
	}
	return out
}

// substitute replaces {{args.NAME}} in s by the argument's value, and
// adds the arguments that have none to missing.
func substitute(s string, args map[string]string, missing *[]string) string {
	return argoArg.ReplaceAllStringFunc(s, func(m string) string {
		name := argoArg.FindStringSubmatch(m)[1]
		if v, ok := args[name]; ok {
			return v
		}
		*missing = append(*missing, "{{args."+name+"}}")
		return m
	})
}

// substituteArgs substitutes the arguments in the provider's templates.
func substituteArgs(p *v1alpha1.MetricProvider, args map[string]string, missing *[]string) {
	var fields []*string
	var headers map[string]string
	if pr := p.Prometheus; pr != nil {
		fields, headers = []*string{&pr.Address, &pr.Query}, pr.Headers
	}
	if w := p.Web; w != nil {
		fields, headers = []*string{&w.URL, &w.Body, &w.JSONPath}, w.Headers
	}
	for _, s := range fields {
		*s = substitute(*s, args, missing)
	}
	for k, v := range headers {
		headers[k] = substitute(v, args, missing)
	}
}

// addMetrics adds metrics to the rollout's analysis, once each: a metric
// of the same name is already there when two steps use one template.
func (c *converter) addMetrics(r *v1alpha1.Rollout, metrics []v1alpha1.MetricSpec, interval *metav1.Duration) {
	if len(metrics) == 0 {
		return
	}
	if r.Spec.Analysis == nil {
		r.Spec.Analysis = &v1alpha1.AnalysisSpec{}
	}
	a := r.Spec.Analysis
	if interval != nil && (a.Interval == nil || interval.Duration < a.Interval.Duration) {
		a.Interval = interval
	}
	for _, m := range metrics {
		name := m.Name
		for n := 2; ; n++ {
			i := slices.IndexFunc(a.Metrics, func(h v1alpha1.MetricSpec) bool { return h.Name == m.Name })
			if i < 0 {
				a.Metrics = append(a.Metrics, m)
				break
			}
			if reflect.DeepEqual(a.Metrics[i], m) {
				break
			}
			// Two templates measure different things under one name.
			m.Name = fmt.Sprintf("%s-%d", name, n)
		}
	}
}
