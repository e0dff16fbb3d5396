package spec

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// maxSteps bounds the steps of a plan, written out or expanded from the
// shorthand: a plan of more steps is a mistake (a stepWeight of 0.01), and
// the engine walks the plan on every change.
const maxSteps = 1000

// Validate checks a rollout against the rules in docs/spec.md and returns
// every problem, each naming its field path. It needs no source file, so
// it serves objects read from the Kubernetes API as well as files;
// ParseFile adds the lines. It changes nothing and applies no defaults,
// but Resolve succeeds on every rollout it accepts.
func Validate(r *v1alpha1.Rollout) Errors {
	if r == nil {
		return Errors{{Reason: "no rollout"}}
	}
	var v validator
	v.header(r)
	switch s := &r.Spec; {
	case len(s.TargetRefs) > 0 && (s.Service != nil || s.TargetRef != nil || s.Flag != nil):
		v.add("spec.targetRefs", "names several Deployments rolled out together; set it or one of service (standalone), targetRef (one Deployment) and flag, not two")
	case len(s.TargetRefs) > 0:
		v.kubernetesTargets(r)
	case s.Service != nil && s.TargetRef != nil:
		v.add("spec", "set service (the standalone runtime's proxy and upstreams) or targetRef (a Kubernetes workload), not both")
	case s.Flag != nil && (s.Service != nil || s.TargetRef != nil):
		v.add("spec.flag", "rolls out a feature flag; set it or service (a service behind pipit's proxy) or targetRef (a Kubernetes workload), one of the three")
	case s.Flag != nil:
		v.flag(s)
	case s.Service != nil:
		v.service(s.Service)
		if s.Kubernetes != nil {
			v.add("spec.kubernetes", "is for rollouts with a targetRef (Kubernetes runtime)")
		}
	case s.TargetRef != nil:
		v.kubernetes(s)
	default:
		v.add("spec.service", "is required: where pipit's proxy listens and the stable upstream (or, in Kubernetes, spec.targetRef: the Deployment to roll out)")
	}
	v.strategy(&r.Spec.Strategy)
	v.blueGreen(&r.Spec)
	if r.Spec.Analysis != nil {
		for _, g := range r.Spec.Analysis.Goals {
			v.goalNames = append(v.goalNames, g.Name)
		}
		v.analysis(r.Spec.Analysis)
		v.goals(&r.Spec)
	}
	v.experiment(&r.Spec)
	switch r.Spec.Decision {
	case "", v1alpha1.DecisionAutomatic, v1alpha1.DecisionManual, v1alpha1.DecisionHybrid:
	default:
		v.add("spec.decision", "must be automatic, manual or hybrid, not %q", clip(string(r.Spec.Decision)))
	}
	if d := r.Spec.ProgressDeadline; d != nil && d.Duration <= 0 {
		v.add("spec.progressDeadline", "must be positive, not %s", d.Duration)
	}
	if d := r.Spec.UndoWindow; d != nil && d.Duration < 0 {
		v.add("spec.undoWindow", "must not be negative, not %s", d.Duration)
	}
	v.postPromotion(&r.Spec)
	v.webhooks(r.Spec.Webhooks)
	v.notifications(r.Spec.Notifications)
	v.usageMetrics(&r.Spec)
	v.presetSoak(&r.Spec)
	return v.errs
}

// validator collects the problems of one rollout.
type validator struct {
	errs Errors
	// goalNames are the names of spec.analysis.goals, which conversion
	// metrics name.
	goalNames []string
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// positive reports a duration field that is set but not above zero.
func (v *validator) positive(field string, d *metav1.Duration) {
	if d != nil && d.Duration <= 0 {
		v.add(field, "must be positive, not %s", d.Duration)
	}
}

// notNegative reports a count that is set but below zero.
func (v *validator) notNegative(field string, n *int32) {
	if n != nil && *n < 0 {
		v.add(field, "must not be negative, not %d", *n)
	}
}

// apiVersion checks a document's apiVersion, pipit's for every kind.
func (v *validator) apiVersion(av string) {
	switch av {
	case v1alpha1.APIVersion:
	case "":
		v.add("apiVersion", "is required: %s", v1alpha1.APIVersion)
	default:
		v.add("apiVersion", "must be %s, not %q", v1alpha1.APIVersion, clip(av))
	}
}

func (v *validator) header(r *v1alpha1.Rollout) {
	v.apiVersion(r.APIVersion)
	switch r.Kind {
	case v1alpha1.KindRollout:
	case "":
		v.add("kind", "is required: %s", v1alpha1.KindRollout)
	default:
		v.add("kind", "must be %s, not %q", v1alpha1.KindRollout, clip(r.Kind))
	}
	if r.Name == "" {
		v.add("metadata.name", "is required")
	} else {
		v.dnsLabel("metadata.name", r.Name)
	}
	if r.Namespace != "" {
		v.dnsLabel("metadata.namespace", r.Namespace)
	}
}

func (v *validator) dnsLabel(field, s string) {
	if len(validation.IsDNS1123Label(s)) > 0 {
		v.add(field, "%q is not a valid name: use at most 63 lowercase letters, digits and '-', "+
			"starting and ending with a letter or digit", clip(s))
	}
}

func (v *validator) service(s *v1alpha1.ServiceSpec) {
	const p = "spec.service"
	if s.Listen == "" {
		v.add(p+".listen", "is required: the address the proxy listens on, such as 127.0.0.1:8080")
	} else if reason := checkListen(s.Listen); reason != "" {
		v.add(p+".listen", "%s", reason)
	}
	v.upstream(p+".stable", &s.Stable)
	if s.Canary != nil {
		v.upstream(p+".canary", s.Canary)
		// A version that is both is reported once, above.
		both := func(u *v1alpha1.Upstream) bool { return u.Process != nil && (u.URL != "" || u.URLs != nil) }
		if !both(&s.Stable) && !both(s.Canary) && (s.Canary.Process != nil) != (s.Stable.Process != nil) {
			v.add(p+".canary", "must be of the same kind as the stable: both urls or both processes")
		}
	}
	if hc := s.HealthCheck; hc != nil {
		if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
			v.add(p+".healthCheck.path", "must start with /, as in /health, not %q", clip(hc.Path))
		}
		v.positive(p+".healthCheck.interval", hc.Interval)
		v.positive(p+".healthCheck.timeout", hc.Timeout)
		if hc.FailureThreshold < 0 {
			v.add(p+".healthCheck.failureThreshold", "must not be negative, not %d", hc.FailureThreshold)
		}
	}
	v.errs = append(v.errs, ValidateTraffic(s.Traffic, p+".traffic")...)
	if strings.ContainsAny(s.Host, ":/ ") {
		v.add(p+".host", "must be a host name without port or path, such as shop.example.com, not %q", clip(s.Host))
	}
	if s.PathPrefix != "" && !strings.HasPrefix(s.PathPrefix, "/") {
		v.add(p+".pathPrefix", "must start with /, as in /api, not %q", clip(s.PathPrefix))
	}
	if t := s.TLS; t != nil && (t.CertFile == "" || t.KeyFile == "") {
		v.add(p+".tls", "needs both certFile and keyFile")
	}
	v.listener(p, s)
}

func (v *validator) upstream(field string, u *v1alpha1.Upstream) {
	set := 0
	for _, isSet := range []bool{u.URL != "", u.URLs != nil, u.Process != nil} {
		if isSet {
			set++
		}
	}
	switch {
	case set > 1:
		v.add(field, "set one of url, urls and process, not two: a version is reached at a URL, at the URLs of its machines, or run by pipit")
	case u.URLs != nil:
		v.urls(field+".urls", u.URLs)
	case u.Process != nil:
		v.process(field+".process", u.Process)
		if u.Version == "" {
			v.add(field+".version", "is required with process: it names the version's processes and logs")
		}
	case u.URL == "":
		v.add(field+".url", "is required, such as http://127.0.0.1:9001, unless urls or process is set")
	default:
		if reason := checkURL(u.URL, true); reason != "" {
			v.add(field+".url", "%s", reason)
		}
	}
}

// MaxUpstreamURLs is how many machines one version may list in urls.
const MaxUpstreamURLs = 64

// urls checks the machines of a version: at least one and at most
// MaxUpstreamURLs absolute http(s) URLs, none listed twice.
func (v *validator) urls(field string, urls []string) {
	switch {
	case len(urls) == 0:
		v.add(field, "must list at least one URL, such as http://10.0.0.7:8080")
	case len(urls) > MaxUpstreamURLs:
		v.add(field, "lists %d URLs, more than the %d allowed", len(urls), MaxUpstreamURLs)
	}
	for i, u := range urls {
		f := fmt.Sprintf("%s[%d]", field, i)
		if reason := checkURL(u, true); reason != "" {
			v.add(f, "%s", reason)
		} else if j := slices.Index(urls[:i], u); j >= 0 {
			v.add(f, "%q is listed already, as %s[%d]", clip(redacted(u)), field, j)
		}
	}
}

// redacted is s, a valid URL, less any password.
func redacted(s string) string {
	u, _ := url.Parse(s)
	return u.Redacted()
}

// checkListen explains what is wrong with a listen address, or returns "".
func checkListen(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port, such as 127.0.0.1:8080 or :8080", clip(s))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("port %q must be a number from 1 to 65535 (0 picks a free port)", clip(port))
	}
	if host != "" && net.ParseIP(host) == nil && len(validation.IsDNS1123Subdomain(host)) > 0 {
		return fmt.Sprintf("host %q is neither an IP address nor a host name", clip(host))
	}
	return ""
}

// checkURL explains what is wrong with an absolute http or https URL, or
// returns "". With showURL it quotes the URL, less any password, to say
// which one is wrong; a hook's or a notifier's URL is never shown, since
// its path or query may hold a token.
func checkURL(s string, showURL bool) string {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "is not a valid URL: " + err.Error()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && showURL:
		return fmt.Sprintf("must be an absolute http or https URL such as http://127.0.0.1:9001, not %q", clip(u.Redacted()))
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http or https URL"
	case u.Host == "" && showURL:
		return fmt.Sprintf("%q has no host", clip(u.Redacted()))
	case u.Host == "":
		return "has no host"
	}
	return ""
}

// CheckSecretURL explains what is wrong with the URL of a hook or a
// notifier, or returns "", without quoting the URL. The notify family
// checks with it a URL it reads at run time from the environment or a file.
func CheckSecretURL(s string) string { return checkURL(s, false) }

func (v *validator) strategy(st *v1alpha1.Strategy) {
	const p = "spec.strategy"
	v.positive(p+".interval", st.Interval)
	shorthand := st.StepWeight != nil || st.MaxWeight != nil || len(st.StepWeights) > 0
	switch {
	case st.Experiment != nil && (st.BlueGreen != nil || st.Preset != nil || len(st.Steps) > 0 || shorthand):
		v.add(p+".experiment", "cannot be mixed with steps, a preset, blueGreen or the shorthand (stepWeight, maxWeight, stepWeights): an experiment holds one split until its verdict")
	case st.Experiment != nil:
	case st.BlueGreen != nil && (st.Preset != nil || len(st.Steps) > 0 || shorthand):
		v.add(p+".blueGreen", "cannot be mixed with steps, a preset or the shorthand (stepWeight, maxWeight, stepWeights): blue-green switches all traffic at once")
	case st.BlueGreen != nil:
	case st.Preset != nil && (len(st.Steps) > 0 || shorthand):
		v.add(p+".preset", "use preset, steps or the shorthand (stepWeight, maxWeight, stepWeights), only one of them")
	case len(st.Steps) > 0 && shorthand:
		v.add(p, "use steps or the shorthand (stepWeight, maxWeight, stepWeights), not both")
	case len(st.Steps) == 0 && !shorthand && st.Preset == nil:
		v.add(p, "needs steps, a preset, blueGreen, an experiment, or the shorthand stepWeight or stepWeights")
	}
	if st.Preset != nil {
		v.preset(st.Preset)
	}
	if len(st.Steps) > 0 {
		v.steps(st.Steps)
	}
	if shorthand {
		v.shorthand(st)
	}
}

func (v *validator) steps(steps []v1alpha1.Step) {
	if len(steps) > maxSteps {
		v.add("spec.strategy.steps", "has %d steps; at most %d are allowed", len(steps), maxSteps)
	}
	var last *v1alpha1.Percent
	for i, s := range steps {
		p := fmt.Sprintf("spec.strategy.steps[%d]", i)
		switch kinds := stepKinds(s); len(kinds) {
		case 0:
			v.add(p, "a step needs one of setWeight, pause, analysis or approval")
		case 1:
		default:
			v.add(p, "a step sets %s; give each its own step", strings.Join(kinds, " and "))
		}
		if w := s.SetWeight; w != nil {
			switch {
			case *w < 0 || *w > v1alpha1.FullWeight:
				v.add(p+".setWeight", "must be from 0 to 100, not %s", num(*w))
			case last != nil && *w < *last:
				v.add(p+".setWeight", "weights must not go down: %s after %s", num(*w), num(*last))
				last = w
			default:
				last = w
			}
		}
		if ps := s.Pause; ps != nil && ps.Duration != nil && ps.Duration.Duration <= 0 {
			v.add(p+".pause.duration", "must be positive; leave it out to wait for `pipit promote`")
		}
		if a := s.Analysis; a != nil && a.Checks < 0 {
			v.add(p+".analysis.checks", "must not be negative, not %d", a.Checks)
		}
		if a := s.Approval; a != nil {
			v.positive(p+".approval.timeout", a.Timeout)
			switch a.OnTimeout {
			case "", v1alpha1.ApprovalRollback, v1alpha1.ApprovalWait:
			default:
				v.add(p+".approval.onTimeout", "must be rollback or wait, not %q", clip(string(a.OnTimeout)))
			}
		}
	}
}

func stepKinds(s v1alpha1.Step) []string {
	var kinds []string
	if s.SetWeight != nil {
		kinds = append(kinds, "setWeight")
	}
	if s.Pause != nil {
		kinds = append(kinds, "pause")
	}
	if s.Analysis != nil {
		kinds = append(kinds, "analysis")
	}
	if s.Approval != nil {
		kinds = append(kinds, "approval")
	}
	return kinds
}

func (v *validator) shorthand(st *v1alpha1.Strategy) {
	const p = "spec.strategy"
	if len(st.StepWeights) > 0 {
		v.stepWeights(st.StepWeights)
		if st.StepWeight != nil || st.MaxWeight != nil {
			v.add(p+".stepWeights", "use stepWeights, or stepWeight with maxWeight, not both")
		}
		return
	}
	if st.StepWeight == nil {
		v.add(p+".maxWeight", "needs stepWeight")
		return
	}
	step, limit, limitName := *st.StepWeight, v1alpha1.Percent(DefaultMaxWeight), "the default maxWeight"
	ok := shareInRange(step)
	if !ok {
		v.add(p+".stepWeight", "must be more than 0 and at most 100, not %s", num(step))
	}
	if st.MaxWeight != nil {
		limit, limitName = *st.MaxWeight, "maxWeight"
		if !shareInRange(limit) {
			v.add(p+".maxWeight", "must be more than 0 and at most 100, not %s", num(limit))
			ok = false
		}
	}
	switch {
	case !ok:
	case step > limit:
		v.add(p+".stepWeight", "stepWeight %s is above %s %s", num(step), limitName, num(limit))
	default:
		if n := (limit + step - 1) / step; n > maxSteps {
			v.add(p+".stepWeight", "stepWeight %s up to %s %s makes %d steps; at most %d are allowed",
				num(step), limitName, num(limit), n, maxSteps)
		}
	}
}

func (v *validator) stepWeights(ws []v1alpha1.Percent) {
	if len(ws) > maxSteps {
		v.add("spec.strategy.stepWeights", "has %d weights; at most %d are allowed", len(ws), maxSteps)
	}
	for i, w := range ws {
		p := fmt.Sprintf("spec.strategy.stepWeights[%d]", i)
		switch {
		case !shareInRange(w):
			v.add(p, "must be more than 0 and at most 100, not %s", num(w))
		case i > 0 && w <= ws[i-1]:
			v.add(p, "stepWeights must go up: %s after %s", num(w), num(ws[i-1]))
		}
	}
}

// shareInRange reports whether w is a share the canary can step to: more
// than nothing, at most everything.
func shareInRange(w v1alpha1.Percent) bool { return w > 0 && w <= v1alpha1.FullWeight }

// num renders a share as a number of percent, as it is written in a file.
func num(p v1alpha1.Percent) string { return strconv.FormatFloat(p.Float(), 'f', -1, 64) }

func fnum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
