package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// experimentSpec is an experiment behind a Gateway API route: the
// requests with the cookie variant=treatment (which the shop gives half
// of its users) go to the canary, and the goal checkout is counted from
// the shop's own counters in Prometheus, by the Service of each version.
const experimentSpec = `
  kubernetes:
    router:
      gatewayAPI:
        parentRefs: [{name: gw}]
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

// TestExperimentThroughTheRouter runs an experiment in a cluster: the
// treatment gets only its group's requests, by the route's cookie match,
// with no weight; the goal's counts come from a real Prometheus; the
// winner is named in status and events, and promoted, or the treatment
// rolled back.
func TestExperimentThroughTheRouter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		stableRate, canaryRate float64
		phase                  v1alpha1.Phase
		winner                 v1alpha1.ExperimentWinner
	}{
		{"the treatment wins", 0.10, 0.15, v1alpha1.PhaseSucceeded, v1alpha1.WinnerTreatment},
		{"the control wins", 0.15, 0.10, v1alpha1.PhaseRolledBack, v1alpha1.WinnerControl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScenario(t)
			s.prometheusURL = promserver.Start(t, []string{shopCounters(t, tc.stableRate, tc.canaryRate)}, 200*time.Millisecond).URL
			s.createWeb(2, experimentSpec)
			s.startController()
			s.installed("registry.example/web:v1")
			rec := recordWeights(func() (int64, bool) {
				st, c, ok := s.routeWeights("web", "web-stable", "web-canary")
				return percentOf(int64(st), int64(c)), ok
			})
			s.SetImage("web", "registry.example/web:v2")
			s.WaitRollout("web", "the treatment group under test, with no weight", func(r *v1alpha1.Rollout) bool {
				return r.Status.Experiment != nil && r.Status.Previewing && r.Status.CanaryWeight == 0
			})
			s.Eventually("the route sends the cookie variant=treatment to the canary", func(context.Context) error {
				return s.treatmentRule()
			})
			r := s.WaitPhase("web", tc.phase)
			x := r.Status.Experiment
			if x == nil || x.Winner != tc.winner {
				t.Fatalf("experiment %+v, want winner %s", x, tc.winner)
			}
			if x.Control.Rate == nil || x.Treatment.Rate == nil || x.Control.Visitors < 200 || x.SampleRatioPValue == nil {
				t.Errorf("experiment %+v: want both rates, at least 200 visitors each, and the sample ratio checked", x)
			}
			if seen := rec.values(); slices.ContainsFunc(seen, func(w int64) bool { return w > 0 && w < 100 }) {
				t.Errorf("HTTPRoute canary shares seen %v: want none between 0 and 100, the group goes by its cookie", seen)
			}
			ev := s.waitEvent("web", "ExperimentConcluded")
			if !strings.Contains(ev[0], "winner "+string(tc.winner)) {
				t.Errorf("ExperimentConcluded event %q does not name the winner %s", ev[0], tc.winner)
			}
			s.routeAllStable("after the experiment")
		})
	}
}

// treatmentRule checks that the HTTPRoute holds pipit's rule sending the
// requests with the cookie variant=treatment to the canary Service.
func (s *scenario) treatmentRule() error {
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
				if strings.EqualFold(string(h.Name), "cookie") && strings.Contains(h.Value, "variant") && strings.Contains(h.Value, "treatment") {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("no rule of pipit sends the cookie variant=treatment to web-canary: %+v", hr.Spec.Rules)
}
