package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/hook"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Hooks runs a rollout's webhooks for the runner, so that no hook ever
// blocks a decision longer than a check's own measurements do: gate hooks
// run in the background and answer at a later tick, rollback hooks are
// polled in the background once an interval, event and post-rollout hooks
// are fire and forget. Rollout hooks (load tests) are measured with the
// metrics at each check.
type Hooks struct {
	Rollout, Namespace string
	Plan               spec.Plan
	// Run runs one hook; a hook.Runner's unless a test says otherwise.
	Run func(ctx context.Context, w v1alpha1.WebhookSpec, p hook.Payload) hook.Result
	// Log receives the post-rollout hooks' results; nil discards them.
	Log *slog.Logger

	ctx    context.Context // ends the background runs
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   []engine.HookResult
	alarms []rollout.Alarm
	// nextRollbackPoll is when the rollback hooks are polled next;
	// polling marks a poll in flight so polls never pile up.
	nextRollbackPoll time.Time
	polling          bool
	// loadTests holds the last result of each background load test,
	// and which ones are running.
	loadTests map[string]*loadTestState
}

type loadTestState struct {
	running bool
	last    *hook.Result
}

// NewHooks returns a hook runner whose background runs end with ctx. The
// hooks wait between attempts on clock (nil is the wall clock) and log to
// log (nil discards).
func NewHooks(ctx context.Context, name, namespace string, plan spec.Plan, clock rollout.Clock, log *slog.Logger) *Hooks {
	return &Hooks{Rollout: name, Namespace: namespace, Plan: plan, Run: hook.Runner{Clock: clock, Log: log}.Run, Log: log, ctx: ctx,
		loadTests: map[string]*loadTestState{}}
}

// Wait waits for the background runs, after their context ended.
func (h *Hooks) Wait() { h.wg.Wait() }

func (h *Hooks) payload(st v1alpha1.RolloutStatus) hook.Payload {
	p := hook.Payload{Name: h.Rollout, Namespace: h.Namespace, Phase: string(st.Phase), Step: st.CurrentStep, Weight: st.CanaryWeight.Float()}
	if st.Canary != nil {
		p.Version = st.Canary.Version
	}
	if st.Stable != nil {
		p.StableVersion = st.Stable.Version
	}
	return p
}

// background runs f on its own goroutine, tracked for Wait.
func (h *Hooks) background(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// runAll runs every hook of a type concurrently: the answer is yes when
// all said yes, and the messages say who said what.
func (h *Hooks) runAll(t v1alpha1.HookType, p hook.Payload) (bool, string) {
	hooks := h.Plan.Hooks[t]
	results := make([]hook.Result, len(hooks))
	var wg sync.WaitGroup
	for i, w := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.Run(h.ctx, w, p)
		}()
	}
	wg.Wait()
	ok := true
	msgs := make([]string, len(hooks))
	for i, r := range results {
		ok = ok && r.OK
		msgs[i] = hooks[i].Name + ": " + describe(r)
	}
	return ok, strings.Join(msgs, "; ")
}

func describe(r hook.Result) string {
	switch {
	case r.Err != nil:
		return r.Err.Error()
	case r.Message != "":
		return r.Message
	case r.OK:
		return "yes"
	}
	return "no"
}

// Start runs the gate hooks of an ActionRunHooks in the background; the
// answer is handed to the engine by Results at a later tick.
func (h *Hooks) Start(t v1alpha1.HookType, run int64, st v1alpha1.RolloutStatus) {
	p := h.payload(st)
	h.background(func() {
		ok, msg := h.runAll(t, p)
		h.mu.Lock()
		h.done = append(h.done, engine.HookResult{Run: run, OK: ok, Message: msg})
		h.mu.Unlock()
	})
}

// Results hands over the answers of the gate hook runs that finished.
func (h *Hooks) Results() []engine.HookResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.done
	h.done = nil
	return out
}

// Alarms polls the rollback hooks once an analysis interval while the
// canary is being analysed, in the background, and returns the alarm of a
// poll in which a hook asked for a rollback.
func (h *Hooks) Alarms(st v1alpha1.RolloutStatus, now time.Time) []rollout.Alarm {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.alarms
	h.alarms = nil
	active := st.Phase == v1alpha1.PhaseProgressing || st.Phase == v1alpha1.PhaseAwaitingDecision || st.Phase == v1alpha1.PhasePaused
	if len(h.Plan.Hooks[v1alpha1.HookRollback]) == 0 || !active || h.polling || now.Before(h.nextRollbackPoll) {
		return out
	}
	h.polling, h.nextRollbackPoll = true, now.Add(h.Plan.Analysis.Interval)
	p := h.payload(st)
	h.background(func() {
		alarm := h.pollRollback(p)
		h.mu.Lock()
		h.polling = false
		if alarm != nil {
			h.alarms = append(h.alarms, *alarm)
		}
		h.mu.Unlock()
	})
	return out
}

// pollRollback asks each rollback hook; any yes is a request to roll back.
func (h *Hooks) pollRollback(p hook.Payload) *rollout.Alarm {
	for _, w := range h.Plan.Hooks[v1alpha1.HookRollback] {
		if r := h.Run(h.ctx, w, p); r.OK {
			return &rollout.Alarm{Metric: spec.HookMetricPrefix + w.Name,
				Reason: "rollback hook " + w.Name + " asked for a rollback: " + describe(r)}
		}
	}
	return nil
}

// Measure runs the rollout hooks for a check and returns their answers as
// measurements of their metrics: 1 for yes, 0 for no, an error when there
// was no answer. Load tests run in the background for their duration; a
// check reports the last finished one (a load test that is still running
// for the first time counts as yes).
func (h *Hooks) Measure(st v1alpha1.RolloutStatus) []rollout.Measurement {
	hooks := h.Plan.Hooks[v1alpha1.HookRollout]
	out := make([]rollout.Measurement, len(hooks))
	p := h.payload(st)
	var wg sync.WaitGroup
	for i, w := range hooks {
		name := spec.HookMetricPrefix + w.Name
		if w.LoadTest != nil {
			out[i] = h.loadTest(name, w, p)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = measurement(name, h.Run(h.ctx, w, p))
		}()
	}
	wg.Wait()
	return out
}

func (h *Hooks) loadTest(name string, w v1alpha1.WebhookSpec, p hook.Payload) rollout.Measurement {
	h.mu.Lock()
	defer h.mu.Unlock()
	lt := h.loadTests[w.Name]
	if lt == nil {
		lt = &loadTestState{}
		h.loadTests[w.Name] = lt
	}
	if !lt.running {
		lt.running = true
		h.background(func() {
			r := h.Run(h.ctx, w, p)
			h.mu.Lock()
			lt.running, lt.last = false, &r
			h.mu.Unlock()
		})
	}
	if lt.last == nil {
		one := 1.0
		return rollout.Measurement{Metric: name, Canary: &one}
	}
	return measurement(name, *lt.last)
}

func measurement(name string, r hook.Result) rollout.Measurement {
	m := rollout.Measurement{Metric: name}
	switch {
	case r.Err != nil:
		m.Err = r.Err
	default:
		v := 0.0
		if r.OK {
			v = 1
		}
		m.Canary = &v
	}
	return m
}

// Events sends each event to the event hooks, and runs the post-rollout
// hooks when a rollout ended; both in the background.
func (h *Hooks) Events(st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
	p := h.payload(st)
	for _, e := range events {
		if len(h.Plan.Hooks[v1alpha1.HookEvent]) > 0 {
			ep := p
			ep.Event = &e
			h.background(func() { h.runAll(v1alpha1.HookEvent, ep) })
		}
		if ended(e) && len(h.Plan.Hooks[v1alpha1.HookPostRollout]) > 0 {
			h.background(func() {
				ok, msg := h.runAll(v1alpha1.HookPostRollout, p)
				h.logResult(v1alpha1.HookPostRollout, ok, msg)
			})
		}
	}
}

// ended reports whether an event ends a rollout.
func ended(e v1alpha1.Event) bool {
	switch e.Reason {
	case "Promoted", "RolledBack", "Aborted", "Failed", "Undone":
		return true
	}
	return false
}

func (h *Hooks) logResult(t v1alpha1.HookType, ok bool, msg string) {
	log := h.Log
	if log == nil {
		log = discard
	}
	if ok {
		log.Info(fmt.Sprintf("%s hooks said yes", t), "rollout", h.Rollout, "result", msg)
		return
	}
	log.Warn(fmt.Sprintf("%s hooks failed", t), "rollout", h.Rollout, "result", msg)
}
