package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/hook"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// receiver records what hooks and notifiers send it and answers with the
// status its answer function gives.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	answer func(body string) int
}

func newReceiver(t *testing.T, answer func(string) int) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
		code := http.StatusOK
		if r.answer != nil {
			code = r.answer(string(b))
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func (r *receiver) count() int { return len(r.got()) }

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEveryHookTypeNotificationsApprovalAndUndo runs one rollout through
// every kind of gate and callback, with real HTTP receivers.
func TestEveryHookTypeNotificationsApprovalAndUndo(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	listen := freeAddr(t)
	h := newEveryHook(t)
	_, c := startDaemon(t, t.TempDir(), h.rollout(listen, stable.URL))
	deployV2(t, c, canary.URL)

	h.holdWhileFrozen(t, c)
	h.approveAtTheGate(t, c)
	undoInsideTheWindow(t, c, listen)
	h.checkCallbacks(t, c)
}

// everyHook is a receiver for each hook and notifier of the rollout
// TestEveryHookTypeNotificationsApprovalAndUndo runs. confirm-rollout says
// no while frozen, and the rollback hook always says no.
type everyHook struct {
	mu     sync.Mutex
	frozen bool

	confirmRollout, trafficIncrease, confirmPromotion, rollback *receiver // gates
	preRollout, postRollout, events                             *receiver // callbacks
	slack, webhook                                              *receiver // notifiers
}

func newEveryHook(t *testing.T) *everyHook {
	h := &everyHook{frozen: true}
	h.confirmRollout = newReceiver(t, func(string) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.frozen {
			return http.StatusForbidden
		}
		return http.StatusOK
	})
	h.preRollout = newReceiver(t, nil)
	h.trafficIncrease = newReceiver(t, nil)
	h.confirmPromotion = newReceiver(t, nil)
	h.postRollout = newReceiver(t, nil)
	h.rollback = newReceiver(t, func(string) int { return http.StatusNotFound }) // "no": go on
	h.events = newReceiver(t, nil)
	h.slack = newReceiver(t, nil)
	h.webhook = newReceiver(t, nil)
	return h
}

// rollout is the rollout file: an approval gate, a load test, every type
// of webhook and two notifiers, all sent to h's receivers.
func (h *everyHook) rollout(listen, stableURL string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
  strategy:
    steps:
    - setWeight: 10
    - approval: {message: "QA sign-off", timeout: 1h, onTimeout: rollback}
    - setWeight: 50
    - pause: {duration: 500ms}
  analysis:
    interval: 300ms
    failureLimit: 2
  undoWindow: 1h
  webhooks:
  - {name: freeze, type: confirm-rollout, url: %q}
  - {name: smoke, type: pre-rollout, url: %q}
  - {name: load, type: rollout, loadTest: {url: "http://%s/", rate: 20, duration: 1s}}
  - {name: oncall, type: confirm-traffic-increase, url: %q}
  - {name: release, type: confirm-promotion, url: %q}
  - {name: report, type: post-rollout, url: %q}
  - {name: alerts, type: rollback, url: %q}
  - {name: audit, type: event, url: %q}
  notifications:
  - {name: team, type: slack, url: %q, severity: info}
  - {name: ops, type: webhook, url: %q, severity: warn}
`, listen, stableURL, h.confirmRollout.URL, h.preRollout.URL, listen, h.trafficIncrease.URL, h.confirmPromotion.URL,
		h.postRollout.URL, h.rollback.URL, h.events.URL, h.slack.URL, h.webhook.URL))
}

// holdWhileFrozen checks that no traffic moves while confirm-rollout says
// no, however often it is asked, then lifts the freeze.
func (h *everyHook) holdWhileFrozen(t *testing.T, c controlapi.Backend) {
	// Its third question comes after the engine heard two noes.
	waitFor(t, c, 15*time.Second, "confirm-rollout asked three times", func(v1alpha1.RolloutStatus) bool { return h.confirmRollout.count() >= 3 })
	if v, _ := c.Rollout(context.Background(), "web"); v.Status.CanaryWeight != 0 {
		t.Fatalf("during the freeze: weight %s after confirm-rollout said no %d times", v.Status.CanaryWeight, h.confirmRollout.count()-1)
	}
	h.mu.Lock()
	h.frozen = false
	h.mu.Unlock()
}

// approveAtTheGate waits for the approval gate at 10%, approves, and waits
// for the rollout to succeed past the other gates.
func (h *everyHook) approveAtTheGate(t *testing.T, c controlapi.Backend) {
	st := waitFor(t, c, 15*time.Second, "the approval gate", phaseIs(v1alpha1.PhaseAwaitingDecision))
	if st.Gate.Kind != v1alpha1.GateApproval || st.CanaryWeight != v1alpha1.PercentOf(10) || h.preRollout.count() != 1 {
		t.Fatalf("at the gate: %+v at %s, pre-rollout ran %d times", st.Gate, st.CanaryWeight, h.preRollout.count())
	}
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandApprove, Actor: "qa", Reason: "looks good"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 15*time.Second, "Succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	if h.trafficIncrease.count() < 2 || h.confirmPromotion.count() < 1 || h.rollback.count() < 1 {
		t.Errorf("gates asked: traffic-increase %d, promotion %d, rollback polls %d", h.trafficIncrease.count(), h.confirmPromotion.count(), h.rollback.count())
	}
}

// undoInsideTheWindow undoes the promotion: one switch back to v1, no steps.
func undoInsideTheWindow(t *testing.T, c controlapi.Backend, listen string) {
	v, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandUndo, Actor: "sre"})
	if err != nil || v.Status.Phase != v1alpha1.PhaseRolledBack || v.Status.Stable.Version != "v1" {
		t.Fatalf("undo: %v %s", err, v.Status.Phase)
	}
	if seen := versionsServed(t, listen, 30); seen["v1"] != 30 {
		t.Errorf("after undo the proxy served %v", seen)
	}
}

// checkCallbacks checks what the fire-and-forget hooks and notifiers got,
// after giving them a moment to land.
func (h *everyHook) checkCallbacks(t *testing.T, c controlapi.Backend) {
	deadline := time.Now().Add(5 * time.Second)
	for (h.postRollout.count() < 2 || h.webhook.count() == 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if h.postRollout.count() < 2 {
		t.Errorf("post-rollout ran %d times, want after the promotion and after the undo", h.postRollout.count())
	}
	var payload hook.Payload
	if err := json.Unmarshal([]byte(h.preRollout.got()[0]), &payload); err != nil || payload.Name != "web" || payload.Version != "v2" || payload.StableVersion != "v1" {
		t.Errorf("pre-rollout payload %+v (%v)", payload, err)
	}
	reasons := strings.Join(h.events.got(), "\n")
	for _, want := range []string{`"reason":"Started"`, `"reason":"Approved"`, `"reason":"Promoted"`, `"reason":"Undone"`} {
		if !strings.Contains(reasons, want) {
			t.Errorf("event hook did not get %s", want)
		}
	}
	history, _ := c.Events(context.Background(), "web", 0)
	if !strings.Contains(historyText(history), "Approval decision approved by admin: looks good") {
		t.Errorf("history lacks the approval: %s", historyText(history))
	}
	slackText := strings.Join(h.slack.got(), "\n")
	if !strings.Contains(slackText, "web") || !strings.Contains(slackText, "Promotion completed") {
		t.Errorf("slack got:\n%s", slackText)
	}
	// The ops webhook takes warnings and errors only: the undo, not the
	// routine steps.
	opsText := strings.Join(h.webhook.got(), "\n")
	if !strings.Contains(opsText, "Undone") || strings.Contains(opsText, "WeightChanged") {
		t.Errorf("ops webhook got:\n%s", opsText)
	}
}

func TestRollbackHookAbortsTheRollout(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	alert := newReceiver(t, nil) // 200: "roll back now"
	doc := string(rolloutYAML(stable.URL, "1h")) + fmt.Sprintf("  webhooks:\n  - {name: pager, type: rollback, url: %q}\n", alert.URL)
	_, c := startDaemon(t, t.TempDir(), []byte(doc))
	deployV2(t, c, canary.URL)
	st := waitFor(t, c, 15*time.Second, "RolledBack", phaseIs(v1alpha1.PhaseRolledBack))
	if st.Rollback.Metric != "webhook/pager" || !strings.Contains(st.Rollback.Reason, "rollback hook pager asked for a rollback") {
		t.Errorf("rollback %+v", st.Rollback)
	}
}
