package target

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// recordedUpstreams is a fake proxy that records what a static target
// points each role at.
type recordedUpstreams struct{ set map[string][]string }

func (r *recordedUpstreams) SetEndpoints(role, version string, urls []*url.URL) error {
	got := []string{version}
	for _, u := range urls {
		got = append(got, u.String())
	}
	r.set[role] = got
	return nil
}

func (r *recordedUpstreams) RoutedVersions() (stable, canary string) { return "", "" }

func (r *recordedUpstreams) Ejected() (version, reason string, ok bool) { return "", "", false }

func TestStaticPointsARoleAtEveryMachine(t *testing.T) {
	up := &recordedUpstreams{set: map[string][]string{}}
	s := &Static{Proxy: up}
	fleet := v1alpha1.VersionRef{Version: "v2", URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080"}}
	if err := s.DeployCanary(t.Context(), fleet); err != nil {
		t.Fatal(err)
	}
	if err := s.Promote(t.Context(), v1alpha1.VersionRef{Version: "v1", URL: "http://10.0.0.9:8080"}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		RoleCanary: {"v2", "http://10.0.0.7:8080", "http://10.0.0.8:8080"},
		RoleStable: {"v1", "http://10.0.0.9:8080"},
	}
	if !reflect.DeepEqual(up.set, want) {
		t.Fatalf("endpoints %v, want %v", up.set, want)
	}
	bad := v1alpha1.VersionRef{Version: "v3", URLs: []string{"http://10.0.0.7:8080", "10.0.0.8:8080"}}
	if err := s.DeployCanary(t.Context(), bad); err == nil || !strings.Contains(err.Error(), `"10.0.0.8:8080" is not an http(s) URL`) {
		t.Fatalf("DeployCanary(%v) = %v", bad, err)
	}
}
