package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// Every simulated user is new, sends its own key on each request, and
// follows the sample app's lead to the goal: with a conversion rate of 1
// each visitor converts, and the goal sees the key of a visitor.
func TestUsersKeepTheirKeyAndFollowTheLead(t *testing.T) {
	app := sampleapp.Handler(sampleapp.Config{Version: "v2", ConversionRate: 1})
	var mu sync.Mutex
	seen := map[string][]string{} // path → keys
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = append(seen[r.URL.Path], r.Header.Get("X-Shopper"))
		mu.Unlock()
		app.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, err := RunUsers(context.Background(), UsersConfig{URL: srv.URL + "/", Rate: 50, Duration: time.Second, UserHeader: "X-Shopper"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Visitors["v2"] < 30 || s.Converted["v2"] != s.Visitors["v2"] || s.Failed != 0 {
		t.Fatalf("summary %+v: want about 50 visitors of v2, every one converted, none failed", s)
	}
	pages, goals := seen["/"], seen[sampleapp.GoalPath]
	distinct := map[string]bool{}
	for _, k := range pages {
		distinct[k] = k != ""
	}
	if len(distinct) != len(pages) || len(goals) != len(pages) {
		t.Fatalf("%d page visits with %d distinct keys, %d goals: want a key per user, each reaching the goal", len(pages), len(distinct), len(goals))
	}
	for _, k := range goals {
		if !distinct[k] {
			t.Errorf("the goal got key %q, which no page visit had", k)
		}
	}
}

func TestUsersRefuseABadConfig(t *testing.T) {
	if _, err := RunUsers(context.Background(), UsersConfig{URL: "ftp://x", Rate: 1, Duration: time.Second}); err == nil {
		t.Error("RunUsers accepted an ftp URL")
	}
}
