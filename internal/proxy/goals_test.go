package proxy

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// buyGoal is reached by a POST to /buy.
var buyGoal = []v1alpha1.Goal{{Name: "buy", Method: &v1alpha1.StringMatch{Exact: "POST"}, Path: &v1alpha1.StringMatch{Exact: "/buy"}}}

var byUser = &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User-ID"}}}

// leastWeight is the least share of traffic a canary can have, at which
// the users are counted and (almost) all of them go to stable.
const leastWeight v1alpha1.Percent = 1

// goalProxy is a proxy at weight that counts buyGoal's conversions.
func goalProxy(t *testing.T, weight v1alpha1.Percent, maxUsers int) *Proxy {
	t.Helper()
	stable, canary := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := canary.upstream(t)
	return newProxy(t, Config{Stable: stable.upstream(t), Canary: &c, Weight: weight, Name: "shop",
		Traffic: byUser, Goals: buyGoal, MaxGoalUsers: maxUsers})
}

// visit sends one request of user to url (the proxy) and returns the
// version that answered.
func visit(t *testing.T, url, method, path, user string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-User-ID", user)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.Header.Get(DefaultVersionHeader)
}

func conversions(t *testing.T, v traffic.VersionStats) uint64 {
	t.Helper()
	n, ok := v.Conversions("buy")
	if !ok {
		t.Fatal("no goal buy in the stats")
	}
	return n
}

// TestGoalsCountedOnBothPaths: on the fast path and on net/http alike,
// each user is one visitor of the version they were routed to, however
// many requests they send, and a user who buys is one conversion of it.
func TestGoalsCountedOnBothPaths(t *testing.T) {
	for _, path := range []string{"fast", "net/http"} {
		t.Run(path, func(t *testing.T) {
			p := goalProxy(t, 50*v1alpha1.PercentScale, 0)
			url := front(t, p)
			if path == "fast" {
				url = serveWith(t, p, ServerConfig{})
			}
			want := map[string][2]uint64{} // version → visitors, conversions
			for i := range 40 {
				user := "u" + strconv.Itoa(i)
				version := visit(t, url, http.MethodGet, "/", user)
				visit(t, url, http.MethodGet, "/cart", user)
				w := want[version]
				w[0]++
				if i%4 == 0 {
					visit(t, url, http.MethodPost, "/buy", user)
					visit(t, url, http.MethodPost, "/buy", user) // twice: one conversion
					w[1]++
				}
				want[version] = w
			}
			visit(t, url, http.MethodPost, "/buy", "") // no user: not counted
			s := p.Stats()
			for _, v := range []traffic.VersionStats{s.Stable, s.Canary} {
				if got := [2]uint64{v.Visitors(), conversions(t, v)}; got != want[v.Version] {
					t.Errorf("%s: visitors and conversions %v, want %v", v.Version, got, want[v.Version])
				}
			}
			if want["v1"][0] == 0 || want["v2"][0] == 0 {
				t.Fatalf("the users did not split at 50%%: %v", want)
			}
		})
	}
}

// TestGoalsAttributeToTheFirstVersion: a user moved to the canary by a
// higher weight converts for stable, where they were first seen; a new
// canary starts the counts over.
func TestGoalsAttributeToTheFirstVersion(t *testing.T) {
	p := goalProxy(t, leastWeight, 0)
	url := front(t, p)
	for i := range 20 {
		if v := visit(t, url, http.MethodGet, "/", "u"+strconv.Itoa(i)); v != "v1" {
			t.Fatalf("at the least weight user %d went to %s", i, v)
		}
	}
	if err := p.SetWeight(v1alpha1.FullWeight); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if v := visit(t, url, http.MethodPost, "/buy", "u"+strconv.Itoa(i)); v != "v2" {
			t.Fatalf("at 100%% user %d went to %s", i, v)
		}
	}
	s := p.Stats()
	if s.Stable.Visitors() != 20 || conversions(t, s.Stable) != 20 || s.Canary.Visitors() != 0 || conversions(t, s.Canary) != 0 {
		t.Errorf("stable %d/%d, canary %d/%d; want every conversion for stable",
			conversions(t, s.Stable), s.Stable.Visitors(), conversions(t, s.Canary), s.Canary.Visitors())
	}
	v3 := newUpstream(t, "v3")
	up := v3.upstream(t)
	stable := p.table.Load().stable.up
	if err := p.setUpstreams(stable, &up); err != nil {
		t.Fatal(err)
	}
	visit(t, url, http.MethodPost, "/buy", "u0")
	after := p.Stats().Since(s)
	if after.Canary.Visitors() != 1 || conversions(t, after.Canary) != 1 || after.Stable.Visitors() != 0 {
		t.Errorf("after a new canary: canary %d/%d, stable %d visitors; want 1/1 and 0",
			conversions(t, after.Canary), after.Canary.Visitors(), after.Stable.Visitors())
	}
}

// TestGoalsCountedFromTheFirstSplit: at weight 0 the users sent to
// stable are not counted — some are in the canary's buckets and will be
// routed to it once it has a share — while those a rule sends to the
// canary are; the split starts the count.
func TestGoalsCountedFromTheFirstSplit(t *testing.T) {
	stable, canary := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := canary.upstream(t)
	traffic := &v1alpha1.TrafficSpec{UserKey: byUser.UserKey, Rules: []v1alpha1.TrafficRule{
		{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}},
	}}
	p := newProxy(t, Config{Stable: stable.upstream(t), Canary: &c, Name: "shop", Traffic: traffic, Goals: buyGoal})
	url := front(t, p)
	for i := range 10 {
		visit(t, url, http.MethodPost, "/buy", "u"+strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/buy", nil)
	req.Header.Set("X-User-ID", "beta")
	req.Header.Set("X-Beta", "1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if s := p.Stats(); s.Stable.Visitors() != 0 || s.Canary.Visitors() != 1 || conversions(t, s.Canary) != 1 {
		t.Errorf("at weight 0: stable %d visitors, canary %d/%d; want none on stable, the rule's user on the canary",
			s.Stable.Visitors(), conversions(t, s.Canary), s.Canary.Visitors())
	}
	if err := p.SetWeight(50 * v1alpha1.PercentScale); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		visit(t, url, http.MethodGet, "/", "u"+strconv.Itoa(i))
	}
	if s := p.Stats(); s.Stable.Visitors()+s.Canary.Visitors() != 11 {
		t.Errorf("after the split: %d + %d visitors, want the 10 users counted besides the rule's one", s.Stable.Visitors(), s.Canary.Visitors())
	}
}

// TestGoalsCapHolds: the proxy remembers no more users than its bound.
func TestGoalsCapHolds(t *testing.T) {
	p := goalProxy(t, 50*v1alpha1.PercentScale, 64)
	url := serveWith(t, p, ServerConfig{})
	for i := range 300 {
		visit(t, url, http.MethodPost, "/buy", "u"+strconv.Itoa(i))
	}
	s := p.Stats()
	total := s.Stable.Visitors() + s.Canary.Visitors()
	if total > 64 || total < 32 {
		t.Errorf("%d users counted; want at most the bound, 64, and near it", total)
	}
	if c := conversions(t, s.Stable) + conversions(t, s.Canary); c != total {
		t.Errorf("%d conversions of %d users who all bought", c, total)
	}
}

// TestGoalsExported: the visitors and conversions are exported to
// Prometheus per role, version and goal.
func TestGoalsExported(t *testing.T) {
	// One user a shard: u1 and u2 fall in different shards (the hash is
	// deterministic), and more users soon meet a full one.
	p := goalProxy(t, leastWeight, 32)
	url := front(t, p)
	visit(t, url, http.MethodGet, "/", "u1")
	visit(t, url, http.MethodPost, "/buy", "u2")
	untracked := 0
	for i := 0; untracked == 0; i++ { // until a user falls in a full shard
		visit(t, url, http.MethodGet, "/", "more"+strconv.Itoa(i))
		untracked = int(p.table.Load().visits.Untracked())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p, nil))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"pipit_proxy_conversions_total goal=buy role=stable version=v1": 1,
		"pipit_proxy_visitors_total role=canary version=v2":             0,
		"pipit_proxy_visits_untracked_total":                            float64(untracked),
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (exported: %v), want %v", key, v, ok, want)
		}
	}
}
