package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

// scenarioTimeout bounds one wait of a scenario: Deployments on the
// simulated kubelet become ready within seconds.
const scenarioTimeout = 2 * time.Minute

// scenario is one end-to-end test: a namespace of the shared cluster, a
// controller limited to it, and a metric endpoint whose answer the test
// sets.
type scenario struct {
	t         *testing.T
	c         *kubecluster.Cluster
	ns        string
	kc        client.Client
	metric    atomic.Value // float64: what the web provider reads
	metricURL string
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	c := clusterWithCRD(t)
	kc, err := client.New(c.RESTConfig(), client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, c: c, ns: c.Namespace(t), kc: kc}
	s.metric.Store(100.0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"value": %v}`, s.metric.Load().(float64))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.metricURL = "http://" + ln.Addr().String() + "/metric"
	return s
}

// startController runs a controller for the scenario's namespace until
// the returned stop is called (or the test ends).
func (s *scenario) startController() (stop func()) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Getenv("PIPIT_TEST_QUIET") != "" {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	go func() {
		done <- Run(ctx, Options{Config: s.c.RESTConfig(), Namespace: s.ns, MetricsAddr: "0", Log: log})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					s.t.Errorf("controller: %v", err)
				}
			case <-time.After(30 * time.Second):
				s.t.Errorf("controller did not stop within 30s")
			}
		})
	}
	s.t.Cleanup(stop)
	return stop
}

// testWriter sends the controller's logs to the test's log, shown when
// the test fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// createDeployment creates the user's Deployment.
func (s *scenario) createDeployment(name, image string, replicas int32) {
	s.t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: map[string]string{"app": name, "team": "shop"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}
	if err := s.kc.Create(s.ctx(), d); err != nil {
		s.t.Fatalf("create deployment %s: %v", name, err)
	}
}

// setImage changes the user's Deployment as kubectl set image does.
func (s *scenario) setImage(name, image string) {
	s.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var d appsv1.Deployment
		if err := s.kc.Get(s.ctx(), s.key(name), &d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		return s.kc.Update(s.ctx(), &d)
	})
	if err != nil {
		s.t.Fatalf("set image of %s: %v", name, err)
	}
}

// createRollout creates a Rollout from YAML, with the metric URL filled in
// for METRIC_URL.
func (s *scenario) createRollout(manifest string) {
	s.t.Helper()
	var r v1alpha1.Rollout
	manifest = strings.ReplaceAll(manifest, "METRIC_URL", s.metricURL)
	if err := yaml.UnmarshalStrict([]byte(manifest), &r); err != nil {
		s.t.Fatalf("rollout manifest: %v", err)
	}
	r.Namespace = s.ns
	if err := s.kc.Create(s.ctx(), &r); err != nil {
		s.t.Fatalf("create rollout: %v", err)
	}
}

// rollout reads a Rollout.
func (s *scenario) rollout(name string) *v1alpha1.Rollout {
	s.t.Helper()
	var r v1alpha1.Rollout
	if err := s.kc.Get(s.ctx(), s.key(name), &r); err != nil {
		s.t.Fatalf("get rollout %s: %v", name, err)
	}
	return &r
}

// waitRollout waits until cond holds for the Rollout, and returns it.
func (s *scenario) waitRollout(name, what string, cond func(*v1alpha1.Rollout) bool) *v1alpha1.Rollout {
	s.t.Helper()
	var last v1alpha1.Rollout
	err := s.poll(func(ctx context.Context) (bool, error) {
		if err := s.kc.Get(ctx, s.key(name), &last); err != nil {
			return false, nil
		}
		return cond(&last), nil
	})
	if err != nil {
		s.t.Fatalf("rollout %s: waiting for %s: %v\nlast status: phase=%s step=%d weight=%s message=%q\nhistory:\n%s",
			name, what, err, last.Status.Phase, last.Status.CurrentStep, last.Status.CanaryWeight, last.Status.Message, history(&last))
	}
	return &last
}

func (s *scenario) waitPhase(name string, p v1alpha1.Phase) *v1alpha1.Rollout {
	s.t.Helper()
	return s.waitRollout(name, "phase "+string(p), func(r *v1alpha1.Rollout) bool { return r.Status.Phase == p })
}

func history(r *v1alpha1.Rollout) string {
	var b strings.Builder
	for _, e := range r.Status.History {
		fmt.Fprintf(&b, "  %s %s %s %s: %s\n", e.Time.Format("15:04:05.000"), e.Reason, e.Phase, e.Weight, e.Message)
	}
	return b.String()
}

// deployment reads a Deployment; nil when it does not exist.
func (s *scenario) deployment(name string) *appsv1.Deployment {
	s.t.Helper()
	var d appsv1.Deployment
	if err := s.kc.Get(s.ctx(), s.key(name), &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		s.t.Fatalf("get deployment %s: %v", name, err)
	}
	return &d
}

// waitDeployment waits until cond holds for a Deployment.
func (s *scenario) waitDeployment(name, what string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	s.t.Helper()
	var last appsv1.Deployment
	err := s.poll(func(ctx context.Context) (bool, error) {
		if err := s.kc.Get(ctx, s.key(name), &last); err != nil {
			return false, nil
		}
		return cond(&last), nil
	})
	if err != nil {
		s.t.Fatalf("deployment %s: waiting for %s: %v (spec.replicas=%v status=%+v)", name, what, err, last.Spec.Replicas, last.Status)
	}
	return &last
}

// routeWeights returns the weights of the stable and canary Services in
// an HTTPRoute's rules that are not pipit's own.
func (s *scenario) routeWeights(route, stableSvc, canarySvc string) (stable, canary int32, found bool) {
	s.t.Helper()
	var hr gatewayv1.HTTPRoute
	if err := s.kc.Get(s.ctx(), s.key(route), &hr); err != nil {
		return 0, 0, false
	}
	for _, rule := range hr.Spec.Rules {
		if rule.Name != nil && strings.HasPrefix(string(*rule.Name), "pipit-") {
			continue
		}
		for _, b := range rule.BackendRefs {
			w := ptr.Deref(b.Weight, 1)
			switch string(b.Name) {
			case stableSvc:
				stable, found = w, true
			case canarySvc:
				canary = w
			}
		}
	}
	return stable, canary, found
}

// virtualServiceWeights returns the weights of the stable and canary
// destinations in a VirtualService's routes that are not pipit's own.
func (s *scenario) virtualServiceWeights(name, stableHost, canaryHost string) (stable, canary int64, found bool) {
	s.t.Helper()
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("networking.istio.io/v1")
	vs.SetKind("VirtualService")
	if err := s.kc.Get(s.ctx(), s.key(name), vs); err != nil {
		return 0, 0, false
	}
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, r := range routes {
		route, _ := r.(map[string]any)
		if n, _ := route["name"].(string); strings.HasPrefix(n, "pipit-") {
			continue
		}
		dests, _ := route["route"].([]any)
		for _, d := range dests {
			dest, _ := d.(map[string]any)
			host, _, _ := unstructured.NestedString(dest, "destination", "host")
			w, _, _ := unstructured.NestedInt64(dest, "weight")
			switch host {
			case stableHost:
				stable, found = w, true
			case canaryHost:
				canary = w
			}
		}
	}
	return stable, canary, found
}

// events lists the Kubernetes Events about a Rollout, by reason.
func (s *scenario) events(rollout string) map[string][]string {
	s.t.Helper()
	var list eventsv1.EventList
	if err := s.kc.List(s.ctx(), &list, client.InNamespace(s.ns)); err != nil {
		s.t.Fatalf("list events: %v", err)
	}
	out := map[string][]string{}
	for _, e := range list.Items {
		if e.Regarding.Kind == v1alpha1.KindRollout && e.Regarding.Name == rollout {
			out[e.Reason] = append(out[e.Reason], e.Type+": "+e.Note)
		}
	}
	return out
}

// waitEvent waits for a Kubernetes Event of a reason about a Rollout.
func (s *scenario) waitEvent(rollout, reason string) []string {
	s.t.Helper()
	var got map[string][]string
	err := s.poll(func(context.Context) (bool, error) {
		got = s.events(rollout)
		return len(got[reason]) > 0, nil
	})
	if err != nil {
		s.t.Fatalf("no %s event for %s: %v; events: %v", reason, rollout, err, got)
	}
	return got[reason]
}

func (s *scenario) poll(cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, cond)
}

func (s *scenario) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: s.ns, Name: name}
}

func (s *scenario) ctx() context.Context { return callCtx(s.t) }
