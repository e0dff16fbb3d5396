package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/rollout"
)

const apiToken = "cli-test-token"

// fakeBackend keeps rollouts in memory and applies commands with the
// engine's own rule, moving the status in the obvious way. Rollout of a
// name in script answers the scripted views one per call, then the last
// one for ever, as a rollout moving on between two looks.
type fakeBackend struct {
	mu        sync.Mutex
	views     map[string]controlapi.RolloutView
	script    map[string][]controlapi.RolloutView
	events    map[string][]v1alpha1.Event
	samples   map[string][]controlapi.Sample
	submitted []rollout.Command
	gets      int
	rotations int
	reloads   int
	// reloadErr, when set, is what Reload fails with.
	reloadErr error
}

// Reload answers as the daemon does: what changed, or reloadErr.
func (f *fakeBackend) Reload(context.Context) (controlapi.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if f.reloadErr != nil {
		return controlapi.ReloadResult{}, f.reloadErr
	}
	return controlapi.ReloadResult{Added: []string{"blog"}, Removed: []string{"api"},
		Changed: []controlapi.RolloutChange{{Name: "web", Fields: []string{"spec.strategy", "spec.service.listen"}}}}, nil
}

func (f *fakeBackend) Rollouts(context.Context) ([]controlapi.RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []controlapi.RolloutView
	for _, name := range []string{"api", "web"} {
		if v, ok := f.views[name]; ok {
			out = append(out, v)
		}
	}
	return out, nil
}

func (f *fakeBackend) Rollout(_ context.Context, name string) (controlapi.RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if s := f.script[name]; len(s) > 0 {
		v := s[0]
		if len(s) > 1 {
			f.script[name] = s[1:]
		}
		return v, nil
	}
	v, ok := f.views[name]
	if !ok {
		return v, fmt.Errorf("rollout %q: %w", name, controlapi.ErrNotFound)
	}
	return v, nil
}

func (f *fakeBackend) Events(_ context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.views[name]; !ok {
		return nil, fmt.Errorf("rollout %q: %w", name, controlapi.ErrNotFound)
	}
	evs := f.events[name]
	if limit > 0 && limit < len(evs) {
		evs = evs[len(evs)-limit:]
	}
	return evs, nil
}

func (f *fakeBackend) Submit(_ context.Context, name string, cmd rollout.Command) (controlapi.RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[name]
	if !ok {
		return v, fmt.Errorf("rollout %q: %w", name, controlapi.ErrNotFound)
	}
	if err := engine.Allowed(v.Status, cmd); err != nil {
		return v, &controlapi.RefusedError{Reason: err.Error()}
	}
	f.submitted = append(f.submitted, cmd)
	st := &v.Status
	switch cmd.Kind {
	case rollout.CommandDeploy:
		st.Phase, st.Canary, st.CurrentStep, st.CanaryWeight = v1alpha1.PhaseProgressing, cmd.Canary, 0, 0
		st.Message = "waiting for canary " + cmd.Canary.Version + " to become healthy"
	case rollout.CommandPause:
		st.Phase, st.Message = v1alpha1.PhasePaused, "paused by "+cmd.Actor
	case rollout.CommandResume:
		st.Phase, st.Message = v1alpha1.PhaseProgressing, "resumed"
	case rollout.CommandPromote:
		st.CurrentStep++
	case rollout.CommandPromoteFull:
		st.Phase, st.CurrentStep, st.Message = v1alpha1.PhasePromoting, int32(len(v.Steps)), "promoting"
	case rollout.CommandAbort:
		st.Phase, st.CanaryWeight, st.Message = v1alpha1.PhaseAborted, 0, "aborted by "+cmd.Actor
	case rollout.CommandRetry:
		st.Phase, st.CurrentStep = v1alpha1.PhaseProgressing, 0
	}
	f.views[name] = v
	return v, nil
}

// Samples filters the rollout's samples as the daemon's store does.
func (f *fakeBackend) Samples(_ context.Context, name, metric string, since time.Time) ([]controlapi.Sample, error) {
	if _, err := f.Rollout(context.Background(), name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []controlapi.Sample
	for _, s := range f.samples[name] {
		if (metric == "" || s.Name == metric) && !s.At.Before(since) {
			out = append(out, s)
		}
	}
	return out, nil
}

// RotateCookieKeys rotates as the daemon would answer it: web has sticky
// sessions of an hour, api none.
func (f *fakeBackend) RotateCookieKeys(context.Context) (controlapi.KeyRotation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotations++
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return controlapi.KeyRotation{RotatedAt: at, Rollouts: []controlapi.KeyGrace{{Name: "web", PreviousUntil: at.Add(time.Hour)}}}, nil
}

func fptr(v float64) *float64 { return &v }

func mtime(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t)
	return &m
}

// webView is a rollout at its third step of six, with a check behind it
// and live traffic on both versions.
func webView(now time.Time) controlapi.RolloutView {
	healthy := true
	return controlapi.RolloutView{
		Name:                      "web",
		Listen:                    "127.0.0.1:8080",
		Decision:                  v1alpha1.DecisionAutomatic,
		ExpectedRequestsPerSecond: 40,
		Steps: []string{"setWeight 5%", "analysis 1 check", "setWeight 25%", "pause 10m0s",
			"setWeight 50%", "analysis 1 check"},
		Metrics: []v1alpha1.MetricSpec{
			{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: fptr(99)}},
			{Name: "latency-p99", ThresholdRange: &v1alpha1.ThresholdRange{Max: fptr(500)}},
		},
		AnalysisInterval: controlapi.Duration(time.Minute),
		Status: v1alpha1.RolloutStatus{
			Phase:        v1alpha1.PhaseProgressing,
			Message:      "routing 25% to canary v2",
			Stable:       &v1alpha1.VersionRef{Version: "v1", URL: "http://127.0.0.1:9001"},
			Canary:       &v1alpha1.VersionRef{Version: "v2", URL: "http://127.0.0.1:9002"},
			CurrentStep:  3,
			CanaryWeight: 25000,
			StartedAt:    mtime(now.Add(-12 * time.Minute)),
			Analysis: v1alpha1.AnalysisStatus{
				LastCheckAt:  mtime(now.Add(-2 * time.Minute)),
				NextCheckAt:  mtime(now.Add(40 * time.Second)),
				PassedChecks: 4,
				LastResults: []v1alpha1.MetricResult{
					{Name: "request-success-rate", Stable: fptr(99.9), Canary: fptr(99.75), Verdict: v1alpha1.VerdictSuccessful},
					{Name: "latency-p99", Stable: fptr(45.25), Canary: fptr(52.5), Verdict: v1alpha1.VerdictSuccessful},
				},
			},
		},
		Live: &controlapi.LiveMetrics{
			Since: now.Add(-30 * time.Second),
			Stable: controlapi.VersionMetrics{Version: "v1", Healthy: &healthy, Requests: 1200,
				SuccessRate: fptr(99.9), LatencyP50: fptr(12.34), LatencyP99: fptr(45.25)},
			Canary: &controlapi.VersionMetrics{Version: "v2", Healthy: &healthy, Requests: 400,
				SuccessRate: fptr(99.75), LatencyP50: fptr(14), LatencyP99: fptr(1520)},
		},
	}
}

func idleView() controlapi.RolloutView {
	return controlapi.RolloutView{Name: "api", Steps: []string{"setWeight 10%"}, Status: v1alpha1.RolloutStatus{
		Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: "v7"},
	}}
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		views:   map[string]controlapi.RolloutView{"web": webView(time.Now()), "api": idleView()},
		script:  map[string][]controlapi.RolloutView{},
		events:  map[string][]v1alpha1.Event{},
		samples: map[string][]controlapi.Sample{},
	}
}

// startDaemon serves f as the daemon would and returns a state directory
// that points at it.
func startDaemon(t *testing.T, f *fakeBackend) string {
	t.Helper()
	srv := httptest.NewServer(controlapi.NewHandler(f, controlapi.SingleToken(apiToken), nil, nil))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(controlapi.AddressFile, strings.TrimPrefix(srv.URL, "http://")+"\n", 0o644)
	write(controlapi.TokenFile, apiToken+"\n", 0o600)
	return dir
}

// run executes the command line and returns its exit code and outputs.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Execute(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}
