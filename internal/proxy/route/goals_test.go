package route

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// checkoutGoals are two goals: a POST to /checkout, and any request with
// an X-Signup header.
var checkoutGoals = []v1alpha1.Goal{
	{Name: "checkout", Method: &v1alpha1.StringMatch{Exact: "POST"}, Path: &v1alpha1.StringMatch{Exact: "/checkout"}},
	{Name: "signup", Headers: map[string]v1alpha1.StringMatch{"x-signup": {}}},
}

// goalTable is a table at 30% keyed by X-User-ID, with checkoutGoals.
func goalTable(t *testing.T) *Table {
	t.Helper()
	p, err := Compile(byUserID, Options{Name: "checkout", Logger: testLogger(t), Tasks: testTasks(t), Goals: checkoutGoals})
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTable(30*v1alpha1.PercentScale, p, CookieKeys{Current: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	tab = tab.WithUpstreams("v1", "v2", true)
	return &tab
}

// TestGoalsDecision: a decision names the request's user and the goals it
// reaches, and routes the user as it would without goals.
func TestGoalsDecision(t *testing.T) {
	tab := goalTable(t)
	plain := trafficTable(t, byUserID, 30*v1alpha1.PercentScale)
	r := userRequest("u-1")
	r.Method, r.URL.Path = http.MethodPost, "/checkout"
	r.Header.Set("X-Signup", "yes")
	d := tab.Route(r)
	if !d.HasUser || d.User != tab.policy.hash.sum("u-1") || d.Goals != 0b11 {
		t.Errorf("decision %+v: want the user's hash and goals 0b11", d)
	}
	if d := tab.Route(userRequest("u-1")); d.Goals != 0 || !d.HasUser {
		t.Errorf("a plain request reaches goals %b", d.Goals)
	}
	if d := tab.Route(httptestRequest("/checkout")); d.HasUser || d.Goals != 0 {
		t.Errorf("a request without a user key counts: %+v", d)
	}
	for i := range 2000 {
		id := "user-" + strconv.Itoa(i)
		if got, want := tab.Route(userRequest(id)).Canary, plain.Route(userRequest(id)).Canary; got != want {
			t.Fatalf("%s goes to canary=%v with goals, %v without", id, got, want)
		}
	}
	if d := plain.Route(userRequest("u-1")); d.HasUser {
		t.Error("a policy without goals hashes users for them")
	}
}

func httptestRequest(path string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://example.com"+path, nil)
	return r
}

// goalCompileErrors are goals Compile refuses, and what it says.
var goalCompileErrors = []struct {
	name    string
	traffic *v1alpha1.TrafficSpec
	goals   []v1alpha1.Goal
	want    string
}{
	{"no user key", nil, checkoutGoals, "goals need a user key"},
	{"rules but no user key", &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}}, checkoutGoals, "goals need a user key"},
	{"no condition", byUserID, []v1alpha1.Goal{{Name: "all"}}, "goal 0 (all): matches every request"},
	{"bad regex", byUserID, []v1alpha1.Goal{{Name: "re", Path: &v1alpha1.StringMatch{Regex: "("}}}, "goal 0 (re): path: regex"},
	{"too many", byUserID, make([]v1alpha1.Goal, v1alpha1.MaxGoals+1), "17 goals; at most 16"},
}

func TestGoalsCompileErrors(t *testing.T) {
	for _, tc := range goalCompileErrors {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.traffic, Options{Name: "x", Goals: tc.goals})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
