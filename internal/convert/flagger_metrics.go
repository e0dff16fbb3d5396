package convert

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// flaggerPlaceholder is a variable of a Flagger query, such as
// {{ namespace }} or {{ variables.region }}.
var flaggerPlaceholder = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}`)

// builtinQueries are the PromQL queries behind Flagger's two built-in
// metrics, per router: Istio's standard metrics, and otherwise the
// application's own http_request_duration_seconds histogram (the
// convention Flagger's tutorials' podinfo follows) scraped with the pod's
// namespace and name as labels. %[1]s is the workload, %[2]s the window.
var builtinQueries = map[router]map[string]string{
	routerIstio: {
		"request-success-rate": `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ .Namespace }}",destination_workload="%[1]s",response_code!~"5.*"}[%[2]s])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ .Namespace }}",destination_workload="%[1]s"}[%[2]s])) * 100`,
		"request-duration":     `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{ .Namespace }}",destination_workload="%[1]s"}[%[2]s])) by (le))`,
	},
	routerReplicas: {
		"request-success-rate": `sum(rate(http_request_duration_seconds_count{namespace="{{ .Namespace }}",pod=~"%[1]s-[0-9a-z]+-[0-9a-z]+",status!~"5.."}[%[2]s])) / sum(rate(http_request_duration_seconds_count{namespace="{{ .Namespace }}",pod=~"%[1]s-[0-9a-z]+-[0-9a-z]+"}[%[2]s])) * 100`,
		"request-duration":     `histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{namespace="{{ .Namespace }}",pod=~"%[1]s-[0-9a-z]+-[0-9a-z]+"}[%[2]s])) by (le)) * 1000`,
	},
}

// canaryContext is what a Canary's metrics are converted with.
type canaryContext struct {
	r      *v1alpha1.Rollout
	rt     router
	window string // a metric's window when it has no interval: Flagger's 1m
	// refs are the values of Flagger's query variables that do not
	// change from metric to metric: name, namespace, target, service,
	// ingress, route.
	refs map[string]string
}

// flaggerMetric converts one metric of a Canary: a built-in one into a
// Prometheus query of pipit's copies, one naming a MetricTemplate given in
// the input into the template's query, an inline query as it is.
func (c *converter) flaggerMetric(m field, cc *canaryContext) (v1alpha1.MetricSpec, bool) {
	ms := v1alpha1.MetricSpec{Name: m.get("name").str()}
	window := cc.window
	if w := m.get("interval"); w.ok() && w.duration(false) != nil {
		window = w.str()
	}
	if tr := m.get("thresholdRange"); tr.ok() {
		ms.ThresholdRange = &v1alpha1.ThresholdRange{}
		if f, ok := tr.get("min").float(); ok {
			ms.ThresholdRange.Min = &f
		}
		if f, ok := tr.get("max").float(); ok {
			ms.ThresholdRange.Max = &f
		}
	}
	vars := map[string]string{"interval": window}
	for k, v := range cc.refs {
		vars[k] = v
	}
	var tv map[string]string
	m.get("templateVariables").decode(&tv)
	for k, v := range tv {
		vars["variables."+k] = v
	}
	var prom *v1alpha1.PrometheusProvider
	switch ref, q := m.get("templateRef"), m.get("query"); {
	case ref.ok():
		return c.flaggerTemplateMetric(ms, m, ref, cc, vars)
	case q.ok():
		prom = &v1alpha1.PrometheusProvider{Address: c.opts.PrometheusURL, Query: q.str()}
	default:
		prom = c.flaggerBuiltin(m, cc, ms.Name, window)
	}
	if prom == nil {
		return ms, false
	}
	query, unknown := flaggerQuery(prom.Query, vars)
	if len(unknown) > 0 {
		m.noteHere(fmt.Sprintf("metric %q not carried over: its query uses %s, which pipit has no value for", ms.Name, strings.Join(unknown, ", ")))
		return ms, false
	}
	prom.Query = query
	ms.Provider = &v1alpha1.MetricProvider{Prometheus: prom}
	return ms, true
}

// flaggerBuiltin writes the query behind one of Flagger's built-in
// metrics for pipit's copies of the target.
func (c *converter) flaggerBuiltin(m field, cc *canaryContext, name, window string) *v1alpha1.PrometheusProvider {
	rt := cc.rt
	if rt == routerGateway {
		rt = routerReplicas
	}
	q, ok := builtinQueries[rt][name]
	if !ok {
		m.get("name").noteHere(fmt.Sprintf("%q is neither a built-in metric of Flagger's (request-success-rate, request-duration) nor has it a templateRef or a query; not carried over", name))
		return nil
	}
	if rt == routerReplicas {
		m.get("name").noteHere(fmt.Sprintf("Flagger's built-in %s is measured by its mesh or ingress; pipit measures it from the pods' own http_request_duration_seconds histogram at %s (labels namespace, pod and status): change the query if your metrics differ", name, c.opts.PrometheusURL))
	}
	return &v1alpha1.PrometheusProvider{Address: c.opts.PrometheusURL, Query: fmt.Sprintf(q, cc.refs["target"], window)}
}

// flaggerTemplate returns the Prometheus query of the MetricTemplate ref
// names, as written in the template; nil, with a note, when the template
// is not in the input or its provider is not Prometheus.
func (c *converter) flaggerTemplate(ref field, namespace string) *v1alpha1.PrometheusProvider {
	name := ref.get("name").str()
	if ns := ref.get("namespace").str(); ns != "" {
		namespace = ns
	}
	t := c.template("MetricTemplate", namespace, name)
	if t == nil {
		ref.noteHere(fmt.Sprintf("MetricTemplate %s/%s is not in the input; give it with the Canary (pipit convert template.yaml canary.yaml); the metric is not carried over", namespace, name))
		return nil
	}
	s := t.top().get("spec")
	p := s.get("provider")
	if typ := p.get("type").str(); typ != "prometheus" {
		p.get("type").noteHere(fmt.Sprintf("%q: pipit reads metrics from Prometheus and JSON web endpoints only; the metrics using this template are not carried over", typ))
		s.whole()
		return nil
	}
	prom := &v1alpha1.PrometheusProvider{Address: p.get("address").str(), Query: s.get("query").str()}
	if prom.Address == "" {
		prom.Address = c.opts.PrometheusURL
	}
	if skip, _ := p.get("insecureSkipVerify").bool(); skip {
		prom.TLS = &v1alpha1.TLSOptions{InsecureSkipVerify: true}
	}
	p.drop("secretRef", "pipit reads credentials from a file or an environment variable, not a Secret: set provider.prometheus.auth")
	return prom
}

// flaggerQuery replaces Flagger's query variables with pipit's template
// fields or their values, and returns the variables it has no value for.
func flaggerQuery(q string, vars map[string]string) (string, []string) {
	var unknown []string
	out := flaggerPlaceholder.ReplaceAllStringFunc(q, func(s string) string {
		name := flaggerPlaceholder.FindStringSubmatch(s)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		unknown = append(unknown, "{{ "+name+" }}")
		return s
	})
	return out, unknown
}
