package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// experimentSpec is an experiment behind ROUTER: the requests with the
// cookie variant=treatment (which the shop gives half of its users) go to
// the canary, and the goal checkout is counted from the shop's own
// counters in Prometheus, by the Service of each version.
const experimentSpec = `
  kubernetes:
    router:
      ROUTER
    traffic:
      rules:
        - name: treatment-group
          to: canary
          cookies: {variant: {exact: treatment}}
  strategy:
    experiment: {minSample: 200, maxDuration: 10m}
  analysis:
    interval: 1s
    metrics:
      - name: success-rate
        provider: {web: {url: METRIC_URL, jsonPath: "$.value"}}
        thresholdRange: {min: 99}
    goals:
      - name: checkout
        prometheus:
          visitors: sum(increase(shop_visitors_total{service="web-{{ .Role }}"}[{{ .Elapsed }}]))
          conversions: sum(increase(shop_checkouts_total{service="web-{{ .Role }}"}[{{ .Elapsed }}]))
`

// experimentRouter is how one router carries an experiment's treatment
// group: its spec, its canary share (in percent), whether it holds
// pipit's rule sending the cookie to the canary, and the wait until it
// sends everything to stable.
type experimentRouter struct {
	spec      string
	share     func(s *scenario) (int64, bool)
	treatment func(s *scenario) error
	allStable func(s *scenario, when string)
}

// experimentRouters are the Gateway API and Istio.
var experimentRouters = map[string]experimentRouter{
	"gatewayAPI": {
		spec: "gatewayAPI: {parentRefs: [{name: gw}]}",
		share: func(s *scenario) (int64, bool) {
			st, c, ok := s.routeWeights("web", "web-stable", "web-canary")
			return percentOf(int64(st), int64(c)), ok
		},
		treatment: (*scenario).httpRouteTreatmentRule,
		allStable: (*scenario).routeAllStable,
	},
	"istio": {
		spec: "istio: {}",
		share: func(s *scenario) (int64, bool) {
			st, c, ok := s.virtualServiceWeights("web", "web-stable", "web-canary")
			return percentOf(st, c), ok
		},
		treatment: (*scenario).virtualServiceTreatmentRule,
		allStable: (*scenario).virtualServiceAllStable,
	},
}

// shopCounters serves the shop's counters of users by Service, for
// Prometheus to scrape: each second 100 new users of each version, of
// whom the given shares check out.
func shopCounters(t *testing.T, stableRate, canaryRate float64) string {
	counters := map[string]float64{}
	for service, rate := range map[string]float64{"web-stable": stableRate, "web-canary": canaryRate} {
		counters[fmt.Sprintf("shop_visitors_total{service=%q}", service)] = 100
		counters[fmt.Sprintf("shop_checkouts_total{service=%q}", service)] = 100 * rate
	}
	return promserver.Counters(t, counters)
}

// TestExperimentThroughTheRouter runs an experiment in a cluster, through
// each router: the treatment gets only its group's requests, by the
// route's cookie match, with no weight; the goal's counts come from a
// real Prometheus; the winner is named in status and events, and
// promoted, or the treatment rolled back.
func TestExperimentThroughTheRouter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, router           string
		stableRate, canaryRate float64
		phase                  v1alpha1.Phase
		winner                 v1alpha1.ExperimentWinner
	}{
		{"the treatment wins behind the Gateway API", "gatewayAPI", 0.10, 0.15, v1alpha1.PhaseSucceeded, v1alpha1.WinnerTreatment},
		{"the control wins behind Istio", "istio", 0.15, 0.10, v1alpha1.PhaseRolledBack, v1alpha1.WinnerControl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			router := experimentRouters[tc.router]
			s := newScenario(t)
			s.prometheusURL = promserver.Start(t, []string{shopCounters(t, tc.stableRate, tc.canaryRate)}, 200*time.Millisecond).URL
			s.createWeb(2, strings.Replace(experimentSpec, "ROUTER", router.spec, 1))
			s.startController()
			s.installed("registry.example/web:v1")
			rec := recordWeights(func() (int64, bool) { return router.share(s) })
			s.SetImage("web", "registry.example/web:v2")
			s.WaitRollout("web", "the treatment group under test, with no weight", func(r *v1alpha1.Rollout) bool {
				return r.Status.Experiment != nil && r.Status.Previewing && r.Status.CanaryWeight == 0
			})
			s.Eventually("the router sends the cookie variant=treatment to the canary", func(context.Context) error {
				return router.treatment(s)
			})
			r := s.WaitPhase("web", tc.phase)
			s.checkConcluded(r, tc.winner, rec.values())
			router.allStable(s, "after the experiment")
		})
	}
}

// checkConcluded checks an experiment that ended with winner: its numbers
// in the status, a share of the router's that was never partial, and the
// winner named in the events.
func (s *scenario) checkConcluded(r *v1alpha1.Rollout, winner v1alpha1.ExperimentWinner, shares []int64) {
	s.T.Helper()
	x := r.Status.Experiment
	if x == nil || x.Winner != winner {
		s.T.Fatalf("experiment %+v, want winner %s", x, winner)
	}
	if x.Control.Rate == nil || x.Treatment.Rate == nil || x.Control.Visitors < 200 || x.SampleRatioFrom == nil {
		s.T.Errorf("experiment %+v: want both rates, at least 200 visitors each, and the sample ratio counted", x)
	}
	if slices.ContainsFunc(shares, func(w int64) bool { return w > 0 && w < 100 }) {
		s.T.Errorf("canary shares seen %v: want none between 0 and 100, the group goes by its cookie", shares)
	}
	ev := s.waitEvent("web", "ExperimentConcluded")
	if !strings.Contains(ev[0], "winner "+string(winner)) {
		s.T.Errorf("ExperimentConcluded event %q does not name the winner %s", ev[0], winner)
	}
}

// isTreatmentCookie reports whether a regular expression on the Cookie
// header is pipit's match of the cookie variant=treatment.
func isTreatmentCookie(re string) bool {
	return strings.Contains(re, "variant") && strings.Contains(re, "treatment")
}

// httpRouteTreatmentRule checks that the HTTPRoute holds pipit's rule
// sending the requests with the cookie variant=treatment to the canary
// Service.
func (s *scenario) httpRouteTreatmentRule() error {
	var hr gatewayv1.HTTPRoute
	if err := s.Client.Get(s.Ctx(), s.Key("web"), &hr); err != nil {
		return err
	}
	for _, rule := range hr.Spec.Rules {
		if !strings.HasPrefix(ptr.Deref((*string)(rule.Name), ""), "pipit-") || len(rule.BackendRefs) != 1 || rule.BackendRefs[0].Name != "web-canary" {
			continue
		}
		for _, m := range rule.Matches {
			for _, h := range m.Headers {
				if strings.EqualFold(string(h.Name), "cookie") && isTreatmentCookie(h.Value) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("no rule of pipit sends the cookie variant=treatment to web-canary: %+v", hr.Spec.Rules)
}

// virtualServiceTreatmentRule checks that the VirtualService holds
// pipit's route sending the requests with the cookie variant=treatment to
// the canary.
func (s *scenario) virtualServiceTreatmentRule() error {
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("networking.istio.io/v1")
	vs.SetKind("VirtualService")
	if err := s.Client.Get(s.Ctx(), s.Key("web"), vs); err != nil {
		return err
	}
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, r := range routes {
		route, _ := r.(map[string]any)
		name, _ := route["name"].(string)
		dests, _ := route["route"].([]any)
		if !strings.HasPrefix(name, "pipit-") || len(dests) != 1 {
			continue
		}
		host, _, _ := unstructured.NestedString(dests[0].(map[string]any), "destination", "host")
		matches, _ := route["match"].([]any)
		for _, m := range matches {
			re, _, _ := unstructured.NestedString(m.(map[string]any), "headers", "cookie", "regex")
			if host == "web-canary" && isTreatmentCookie(re) {
				return nil
			}
		}
	}
	return fmt.Errorf("no route of pipit sends the cookie variant=treatment to web-canary: %v", routes)
}
