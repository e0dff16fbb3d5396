package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/target"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// analysisSteps is a short plan: two weights, each soaked briefly and
// checked by the analysis before the next.
const analysisSteps = `
  strategy:
    steps:
      - setWeight: 20
      - pause: {duration: 1s}
      - analysis: {}
      - setWeight: 50
      - pause: {duration: 1s}
      - analysis: {}
  analysis:
    interval: 1s
    metrics:
      - name: success-rate
        provider: {web: {url: METRIC_URL, jsonPath: "$.value"}}
        thresholdRange: {min: 99}
`

// gatewayRouter is the start of a Rollout's spec behind a Gateway API
// route of the Gateway gw.
const gatewayRouter = `
  kubernetes:
    router:
      gatewayAPI:
        parentRefs: [{name: gw}]
`

// gatewaySpec is a Rollout's spec behind a Gateway API route, with a rule
// that sends the requests with the header canary: true to the canary.
const gatewaySpec = gatewayRouter + `    traffic:
      rules:
        - name: force-canary
          to: canary
          headers: {canary: {exact: "true"}}
` + analysisSteps

// istioSpec is a Rollout's spec behind an Istio VirtualService.
const istioSpec = `
  kubernetes:
    router:
      istio: {}
` + analysisSteps

// weightRecorder samples a router's canary share (in percent) while a
// rollout runs, keeping each distinct value in order.
type weightRecorder struct {
	mu   sync.Mutex
	seen []int64
	stop context.CancelFunc
	done chan struct{}
}

func recordWeights(sample func() (canaryPercent int64, ok bool)) *weightRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	w := &weightRecorder{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			if p, ok := sample(); ok {
				w.mu.Lock()
				if len(w.seen) == 0 || w.seen[len(w.seen)-1] != p {
					w.seen = append(w.seen, p)
				}
				w.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

func (w *weightRecorder) values() []int64 {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

func percentOf(stable, canary int64) int64 {
	if stable+canary == 0 {
		return 0
	}
	return canary * 100 / (stable + canary)
}

// installed waits for the first install of the web Deployment and checks
// what it created: the stable copy serving the first image, the three
// Services, the user's Deployment scaled to zero, no analysis.
func (s *scenario) installed(image string) *v1alpha1.Rollout {
	s.T.Helper()
	r := s.WaitRollout("web", "the first install", func(r *v1alpha1.Rollout) bool {
		return r.Status.Stable != nil && r.Status.Phase == v1alpha1.PhaseIdle
	})
	if r.Status.Canary != nil || r.Status.Analysis.PassedChecks+r.Status.Analysis.FailedChecks != 0 {
		s.T.Errorf("a first install ran a canary or checks: %+v", r.Status)
	}
	if !strings.Contains(r.Status.Message, "first install") {
		s.T.Errorf("status message %q does not say it was a first install", r.Status.Message)
	}
	stable := s.WaitDeployment("web-stable", "the stable copy ready", func(d *appsv1.Deployment) bool {
		return d.Status.ReadyReplicas == 2
	})
	if got := stable.Spec.Template.Spec.Containers[0].Image; got != image {
		s.T.Errorf("stable copy runs %s, want %s", got, image)
	}
	if stable.Labels["team"] != "shop" {
		s.T.Errorf("the user's labels were not carried over to the stable copy: %v", stable.Labels)
	}
	// The status names the stable version as soon as the install is
	// decided, before it is carried out: the Services follow.
	for _, name := range []string{"web", "web-stable", "web-canary"} {
		s.WaitService(name)
	}
	s.WaitDeployment("web", "the user's Deployment scaled to zero", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 1) == 0
	})
	s.waitEvent("web", "Installed")
	return r
}

// startedScenario starts a scenario whose Deployment web, replicas of v1,
// is rolled out by a Rollout with spec, and its controller.
func startedScenario(t *testing.T, replicas int32, spec string) *scenario {
	t.Helper()
	s := newScenario(t)
	s.createWeb(replicas, spec)
	s.startController()
	return s
}

// installedScenario is a startedScenario of two replicas after its first
// install (see installed).
func installedScenario(t *testing.T, spec string) (*scenario, *v1alpha1.Rollout) {
	t.Helper()
	s := startedScenario(t, 2, spec)
	return s, s.installed("registry.example/web:v1")
}

func TestFirstInstallIsNotACanary(t *testing.T) {
	t.Parallel()
	_, r := installedScenario(t, gatewaySpec)
	if c := meta.FindStatusCondition(r.Status.Conditions, "Ready"); c == nil || c.Status != "True" {
		t.Errorf("Ready condition after the first install: %+v", c)
	}
	if r.Status.ObservedGeneration != r.Generation {
		t.Errorf("observedGeneration %d, generation %d", r.Status.ObservedGeneration, r.Generation)
	}
}

func TestGatewayAPIPromotes(t *testing.T) {
	t.Parallel()
	s, _ := installedScenario(t, gatewaySpec)

	rec := recordWeights(func() (int64, bool) {
		st, c, ok := s.routeWeights("web", "web-stable", "web-canary")
		return percentOf(int64(st), int64(c)), ok
	})
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "the canary override rule while progressing", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseProgressing && s.hasPipitRule("web")
	})
	r := s.WaitPhase("web", v1alpha1.PhaseSucceeded)
	seen := rec.values()
	if !containsInOrder(seen, 20, 50) {
		t.Errorf("HTTPRoute canary shares seen %v, want 20 then 50", seen)
	}
	// The status is written before the route: the route follows.
	s.routeAllStable("after promotion")
	// The previous version stays warm for the undo window: the stable
	// Service switched to the canary copy's pods, which run v2, and the
	// stable copy keeps running v1.
	s.reachesOnly(map[string]string{"web-stable": target.RoleCanary})
	if img := s.Deployment("web-stable").Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v1" {
		t.Errorf("the stable copy runs %s after the promotion, want v1 kept warm", img)
	}
	if r.Status.Stable == nil || !strings.Contains(r.Status.Stable.Version, "web:v2") {
		t.Errorf("status.stable %+v, want v2", r.Status.Stable)
	}
	for _, reason := range []string{"Started", "WeightChanged", "CheckPassed", "Promoted"} {
		s.waitEvent("web", reason)
	}
	samples := s.samples("success-rate")
	if len(samples) < 2 {
		t.Fatalf("samples of success-rate after a promotion through two checked steps: %+v, want at least 2", samples)
	}
	for i, smp := range samples {
		if smp.Canary == nil || *smp.Canary != 100 || smp.Verdict != v1alpha1.VerdictSuccessful || (i > 0 && !smp.At.After(samples[i-1].At)) {
			t.Errorf("sample %d of %d: %+v at %s, want the canary at 100, Successful, after the previous", i, len(samples), smp.MetricResult, smp.At)
		}
	}
}

// TestTemplateBackToStableTakesTheCanaryBack: the Deployment set back to
// the stable version's image mid-rollout takes the canary back at once,
// as Argo Rollouts does, instead of rolling the stable out as a canary.
func TestTemplateBackToStableTakesTheCanaryBack(t *testing.T) {
	t.Parallel()
	s, _ := installedScenario(t, gatewayRouter+`  strategy:
    steps:
      - setWeight: 20
      - pause: {}
`)
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "the pause at 20%", func(r *v1alpha1.Rollout) bool { return r.Status.Phase == v1alpha1.PhaseAwaitingDecision })
	s.SetImage("web", "registry.example/web:v1")
	r := s.WaitPhase("web", v1alpha1.PhaseAborted)
	if r.Status.Rollback == nil || !strings.Contains(r.Status.Rollback.Reason, "stable version registry.example/web:v1 deployed again") ||
		r.Status.Stable == nil || !strings.Contains(r.Status.Stable.Version, "web:v1") {
		t.Errorf("rollback %+v, stable %+v: want v2 taken back for the stable v1", r.Status.Rollback, r.Status.Stable)
	}
	s.routeAllStable("after the template went back")
	s.WaitDeployment("web-canary", "the canary scaled to zero", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 1) == 0
	})
}

// samples returns the results of metric of rollout web, as the Kubernetes
// backend of pipit dashboard and pipit samples reads them.
func (s *scenario) samples(metric string) []controlapi.Sample {
	s.T.Helper()
	k, err := client.NewKube(client.KubeOptions{Kubeconfig: s.Cluster.Kubeconfig, Namespace: s.Namespace})
	if err != nil {
		s.T.Fatal(err)
	}
	samples, err := k.Samples(s.Ctx(), "web", metric, time.Time{})
	if err != nil {
		s.T.Fatal(err)
	}
	return samples
}

func TestGatewayAPIRollsBackOnFailingMetric(t *testing.T) {
	t.Parallel()
	s, _ := installedScenario(t, gatewaySpec)

	s.metric.Store(50.0) // success rate far below the 99 asked for
	s.SetImage("web", "registry.example/web:v2")
	r := s.WaitPhase("web", v1alpha1.PhaseRolledBack)
	if r.Status.Rollback == nil || r.Status.Rollback.Metric != "success-rate" {
		t.Errorf("rollback %+v does not name the metric", r.Status.Rollback)
	}
	if !strings.Contains(r.Status.Message, "success-rate") {
		t.Errorf("status message %q does not say why", r.Status.Message)
	}
	s.routeAllStable("after rollback")
	s.WaitDeployment("web-canary", "the canary scaled to zero", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 1) == 0
	})
	if img := s.Deployment("web-stable").Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v1" {
		t.Errorf("stable copy runs %s after a rollback", img)
	}
	ev := s.waitEvent("web", "RollingBack")
	if !strings.HasPrefix(ev[0], "Warning") || !strings.Contains(ev[0], "success-rate") {
		t.Errorf("RollingBack event %q: want a Warning naming the metric", ev[0])
	}
	checkRolledBackSeries(t, s.Namespace)
	samples := s.samples("success-rate")
	if n := len(samples); n == 0 || samples[n-1].Canary == nil || *samples[n-1].Canary != 50 || samples[n-1].Verdict != v1alpha1.VerdictFailed {
		t.Errorf("samples of success-rate after the rollback: %+v, want the last at 50, Failed", samples)
	}
}

// checkRolledBackSeries checks the controller's series of rollout web in
// namespace ns once rolled back by its success-rate at 50: the same names
// as the standalone daemon's (see docs/observability.md).
func checkRolledBackSeries(t *testing.T, ns string) {
	t.Helper()
	series := func(kv ...string) map[string]string {
		labels := map[string]string{"namespace": ns, "rollout": "web"}
		for i := 0; i+1 < len(kv); i += 2 {
			labels[kv[i]] = kv[i+1]
		}
		return labels
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"pipit_rollout_phase", series("phase", "RolledBack"), 1},
		{"pipit_rollout_rollbacks_total", series("outcome", "RolledBack"), 1},
		{"pipit_rollout_events_total", series("type", "Warning", "reason", "RolledBack"), 1},
		{"pipit_rollout_metric_value", series("metric", "success-rate", "role", "canary"), 50},
		{"pipit_rollout_canary_weight_percent", series(), 0},
	}
	// The controller publishes its series after it wrote the status.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var wrong []string
		for _, w := range want {
			if got, ok := exportedValue(t, w.name, w.labels); !ok || got != w.value {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v (exported: %v), want %v", w.name, w.labels, got, ok, w.value))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller series:\n%s", strings.Join(wrong, "\n"))
		}
	}
}

func TestIstioPromotesAndRollsBack(t *testing.T) {
	t.Parallel()
	s, _ := installedScenario(t, istioSpec)

	rec := recordWeights(func() (int64, bool) {
		st, c, ok := s.virtualServiceWeights("web", "web-stable", "web-canary")
		return percentOf(st, c), ok
	})
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "v2 promoted", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.Stable != nil && strings.Contains(r.Status.Stable.Version, "web:v2")
	})
	if seen := rec.values(); !containsInOrder(seen, 20, 50) {
		t.Errorf("VirtualService canary shares seen %v, want 20 then 50", seen)
	}
	s.virtualServiceAllStable("after promotion")

	s.metric.Store(50.0)
	s.SetImage("web", "registry.example/web:v3")
	r := s.WaitPhase("web", v1alpha1.PhaseRolledBack)
	if r.Status.Rollback == nil || r.Status.Rollback.Metric != "success-rate" {
		t.Errorf("rollback %+v does not name the metric", r.Status.Rollback)
	}
	s.virtualServiceAllStable("after rollback")
	if img := s.Deployment("web-stable").Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v2" {
		t.Errorf("stable copy runs %s after the v3 rollback, want v2", img)
	}
}

func TestReplicaSplitWithoutRouter(t *testing.T) {
	t.Parallel()
	s := startedScenario(t, 4, `
  strategy:
    steps:
      - setWeight: 50
      - pause: {}
`)
	s.WaitInstalled("web")
	s.SetImage("web", "registry.example/web:v2")
	s.WaitPhase("web", v1alpha1.PhaseAwaitingDecision)
	canary := s.WaitDeployment("web-canary", "half the replicas", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 0) == 2
	})
	if img := canary.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v2" {
		t.Errorf("canary copy runs %s", img)
	}
	s.WaitDeployment("web-stable", "2 stable replicas at 50%", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 0) == 2
	})
}

// routeAllStable waits until the HTTPRoute sends everything to stable and
// holds no rule of pipit's: after a rollout ends nobody reaches the canary.
func (s *scenario) routeAllStable(when string) {
	s.T.Helper()
	s.Eventually(when+": the route sends all to stable, without pipit's rules", func(context.Context) error {
		if st, c, _ := s.routeWeights("web", "web-stable", "web-canary"); c != 0 || st == 0 {
			return fmt.Errorf("stable %d, canary %d", st, c)
		}
		if s.hasPipitRule("web") {
			return errors.New("pipit's override rule is still in the route")
		}
		return nil
	})
}

// virtualServiceAllStable waits until the VirtualService sends all to
// stable.
func (s *scenario) virtualServiceAllStable(when string) {
	s.T.Helper()
	s.Eventually(when+": the VirtualService sends all to stable", func(context.Context) error {
		if st, c, _ := s.virtualServiceWeights("web", "web-stable", "web-canary"); st != 100 || c != 0 {
			return fmt.Errorf("stable %d, canary %d", st, c)
		}
		return nil
	})
}

// hasPipitRule reports whether the HTTPRoute holds a rule pipit added.
func (s *scenario) hasPipitRule(route string) bool {
	s.T.Helper()
	var hr gatewayv1.HTTPRoute
	if err := s.Client.Get(s.Ctx(), s.Key(route), &hr); err != nil {
		return false
	}
	return slices.ContainsFunc(hr.Spec.Rules, func(rule gatewayv1.HTTPRouteRule) bool {
		return rule.Name != nil && strings.HasPrefix(string(*rule.Name), "pipit-")
	})
}

func containsInOrder(seen []int64, want ...int64) bool {
	i := 0
	for _, v := range seen {
		if i < len(want) && v == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestNewTemplateMidRolloutRestartsAnalysis(t *testing.T) {
	t.Parallel()
	s := startedScenario(t, 2, gatewayRouter+`  strategy:
    steps:
      - setWeight: 20
      - pause: {duration: 1s}
      - setWeight: 40
      - pause: {}
`)
	s.WaitInstalled("web")
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "v2 waiting at 40%", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseAwaitingDecision && r.Status.CurrentStep == 3
	})
	s.SetImage("web", "registry.example/web:v3")
	r := s.WaitRollout("web", "v3 waiting at 40%", func(r *v1alpha1.Rollout) bool {
		return r.Status.Canary != nil && strings.Contains(r.Status.Canary.Version, "web:v3") &&
			r.Status.Phase == v1alpha1.PhaseAwaitingDecision && r.Status.CurrentStep == 3
	})
	var restarted bool
	for _, e := range r.Status.History {
		if e.Reason == "CanaryReplaced" {
			restarted = true
		}
	}
	if !restarted {
		t.Errorf("no CanaryReplaced in the history:\n%s", kubefixture.History(r))
	}
	// The steps ran again for v3: 20% came back after the replacement.
	var after []v1alpha1.Percent
	seenReplace := false
	for _, e := range r.Status.History {
		seenReplace = seenReplace || e.Reason == "CanaryReplaced"
		if seenReplace && e.Reason == "WeightChanged" {
			after = append(after, e.Weight)
		}
	}
	if len(after) < 2 || after[0] != v1alpha1.PercentOf(20) {
		t.Errorf("weights after the new template: %v, want the steps again from 20%%", after)
	}
	s.WaitDeployment("web-canary", "the canary copy on v3", func(d *appsv1.Deployment) bool {
		return d.Spec.Template.Spec.Containers[0].Image == "registry.example/web:v3"
	})
}

func TestInvalidRolloutIsRefusedOrReportedNeverHalfApplied(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	s.CreateDeployment("web", "registry.example/web:v1", 2)
	s.startController()

	// What the schema can tell, the API server refuses.
	var both v1alpha1.Rollout
	both.Name, both.Namespace = "both", s.Namespace
	both.Spec.TargetRef = &v1alpha1.TargetRef{Name: "web"}
	both.Spec.Service = &v1alpha1.ServiceSpec{Listen: ":8080", Stable: v1alpha1.Upstream{URL: "http://127.0.0.1:1"}}
	both.Spec.Strategy.Steps = []v1alpha1.Step{{SetWeight: ptr.To(v1alpha1.PercentOf(10))}}
	err := s.Client.Create(s.Ctx(), &both)
	if err == nil || !strings.Contains(err.Error(), "set one of service") {
		t.Errorf("a Rollout with service and targetRef: %v, want the API server to refuse it", err)
	}

	// What needs pipit's rules, the controller reports in the status and
	// does not act on.
	s.CreateRollout("web", `
  strategy:
    steps:
      - setWeight: 20
  analysis:
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
`)
	r := s.WaitRollout("web", "the Stalled condition", func(r *v1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(r.Status.Conditions, ConditionStalled)
		return c != nil && c.Status == "True"
	})
	c := meta.FindStatusCondition(r.Status.Conditions, ConditionStalled)
	if c.Reason != "NoPrometheus" || !strings.Contains(c.Message, "spec.analysis.metrics[0].provider") || !strings.Contains(c.Message, "--prometheus-url") {
		t.Errorf("Stalled condition %+v: want NoPrometheus naming the field and the flag", c)
	}
	if r.Status.Stable != nil {
		t.Errorf("an invalid rollout was installed: %+v", r.Status.Stable)
	}
	time.Sleep(time.Second) // give a wrong controller the time to act
	if s.Found("web-stable", &appsv1.Deployment{}) {
		t.Errorf("an invalid rollout created the stable copy")
	}
	if got := ptr.Deref(s.Deployment("web").Spec.Replicas, 0); got != 2 {
		t.Errorf("an invalid rollout scaled the user's Deployment to %d", got)
	}
}
