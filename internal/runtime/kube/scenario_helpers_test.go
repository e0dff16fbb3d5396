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

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// scenario is one end-to-end test: a namespace of the shared cluster, a
// controller limited to it, and a metric endpoint whose answer the test
// sets.
type scenario struct {
	*kubefixture.Env
	metric    atomic.Value // float64: what the web provider reads
	metricURL string
	// prometheusURL is the controller's --prometheus-url; empty for none.
	prometheusURL string
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{Env: kubefixture.New(t)}
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
	s.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{s.T}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Getenv("PIPIT_TEST_QUIET") != "" {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	go func() {
		done <- Run(ctx, Options{Config: s.Cluster.RESTConfig(), Namespace: s.Namespace, MetricsAddr: "0", Log: log, PrometheusURL: s.prometheusURL})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					s.T.Errorf("controller: %v", err)
				}
			case <-time.After(30 * time.Second):
				s.T.Errorf("controller did not stop within 30s")
			}
		})
	}
	s.T.Cleanup(stop)
	return stop
}

// testWriter sends the controller's logs to the test's log, shown when
// the test fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// createWeb creates the Deployment web, replicas of v1, and the Rollout
// web of it with spec (see CreateWebRollout), the metric URL filled in for
// METRIC_URL.
func (s *scenario) createWeb(replicas int32, spec string) {
	s.T.Helper()
	s.CreateWebRollout(replicas, strings.ReplaceAll(spec, "METRIC_URL", s.metricURL))
}

// routeWeights returns the weights of the stable and canary Services in
// an HTTPRoute's rules that are not pipit's own.
func (s *scenario) routeWeights(route, stableSvc, canarySvc string) (stable, canary int32, found bool) {
	s.T.Helper()
	var hr gatewayv1.HTTPRoute
	if err := s.Client.Get(s.Ctx(), s.Key(route), &hr); err != nil {
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
	s.T.Helper()
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("networking.istio.io/v1")
	vs.SetKind("VirtualService")
	if err := s.Client.Get(s.Ctx(), s.Key(name), vs); err != nil {
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
	s.T.Helper()
	var list eventsv1.EventList
	if err := s.Client.List(s.Ctx(), &list, client.InNamespace(s.Namespace)); err != nil {
		s.T.Fatalf("list events: %v", err)
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
	s.T.Helper()
	var got map[string][]string
	s.Eventually(fmt.Sprintf("a %s event for %s", reason, rollout), func(context.Context) error {
		got = s.events(rollout)
		if len(got[reason]) == 0 {
			return fmt.Errorf("events: %v", got)
		}
		return nil
	})
	return got[reason]
}
