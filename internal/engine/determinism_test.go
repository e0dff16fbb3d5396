package engine

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// decision is one Step's whole Result in a form that reflect.DeepEqual
// compares by value: the status and the actions deep-copied, and each
// consumed command's refusal as its message.
type decision struct {
	Status   v1alpha1.RolloutStatus
	Actions  []rollout.Action
	Events   []v1alpha1.Event
	Consumed []string
}

func snapshot(r Result) decision {
	d := decision{Status: *r.Status.DeepCopy(), Events: append([]v1alpha1.Event(nil), r.Events...)}
	for _, a := range r.Actions {
		if a.Version != nil {
			a.Version = a.Version.DeepCopy()
		}
		d.Actions = append(d.Actions, a)
	}
	for _, err := range r.Consumed {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		d.Consumed = append(d.Consumed, msg)
	}
	return d
}

// String shows a decision's content (not its pointers) in a failure.
func (d decision) String() string {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// copyInput deep-copies everything an Input points to.
func copyInput(in Input) Input {
	out := in
	out.Commands = nil
	for _, c := range in.Commands {
		if c.Canary != nil {
			c.Canary = c.Canary.DeepCopy()
		}
		if c.Weight != nil {
			w := *c.Weight
			c.Weight = &w
		}
		out.Commands = append(out.Commands, c)
	}
	out.Measurements = nil
	for _, m := range in.Measurements {
		m.Canary, m.Stable = clonePtr(m.Canary), clonePtr(m.Stable)
		m.CanarySamples = append([]float64(nil), m.CanarySamples...)
		m.StableSamples = append([]float64(nil), m.StableSamples...)
		out.Measurements = append(out.Measurements, m)
	}
	out.Alarms = append([]rollout.Alarm(nil), in.Alarms...)
	out.HookResults = append([]HookResult(nil), in.HookResults...)
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// scribble overwrites every exported value reachable from v, through
// pointers, slices and maps too, so that a result still sharing memory
// with v shows the change.
func scribble(v reflect.Value) {
	if t, ok := v.Interface().(time.Time); ok {
		v.Set(reflect.ValueOf(t.Add(time.Hour)))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			scribble(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			scribble(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			scribble(e)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(v.String() + "~")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	}
}

// checkedStep is Step, checked at every call: it leaves its input status
// as it was; a second Step on deep copies of the same input decides the
// same, to the last field; and that decision stays the same when the
// copies are overwritten afterwards, so it shares no memory with them.
func checkedStep(t testing.TB) func(spec.Plan, v1alpha1.RolloutStatus, Input) Result {
	return func(plan spec.Plan, st v1alpha1.RolloutStatus, in Input) Result {
		t.Helper()
		pristine := *st.DeepCopy()
		first := Step(plan, st, in)
		if !reflect.DeepEqual(st, pristine) {
			t.Fatalf("Step changed its input status at %s:\nbefore %+v\nafter  %+v", in.Now, pristine, st)
		}
		want := snapshot(first)
		stCopy, inCopy := *st.DeepCopy(), copyInput(in)
		second := Step(plan, stCopy, inCopy)
		if got := snapshot(second); !reflect.DeepEqual(got, want) {
			t.Fatalf("the same Step twice at %s decided differently:\nfirst  %s\nsecond %s", in.Now, want, got)
		}
		scribble(reflect.ValueOf(&stCopy).Elem())
		scribble(reflect.ValueOf(&inCopy).Elem())
		if got := snapshot(second); !reflect.DeepEqual(got, want) {
			t.Fatalf("Step's result at %s shares memory with its input: after overwriting the input\n%s\nwas\n%s", in.Now, got, want)
		}
		return first
	}
}

// recording wraps a step function to keep every decision it makes.
func recording(decide func(spec.Plan, v1alpha1.RolloutStatus, Input) Result, into *[]decision) func(spec.Plan, v1alpha1.RolloutStatus, Input) Result {
	return func(plan spec.Plan, st v1alpha1.RolloutStatus, in Input) Result {
		r := decide(plan, st, in)
		*into = append(*into, snapshot(r))
		return r
	}
}

// richScenario is a rollout that goes through many of the engine's rules.
type richScenario struct {
	name  string
	plan  func() spec.Plan
	drive func(s *sim)
}

// closedUntil makes every gate hook say no until at, then yes.
func closedUntil(s *sim, at time.Time) func(v1alpha1.HookType) (bool, string) {
	return func(t v1alpha1.HookType) (bool, string) {
		if s.now.Before(at) {
			return false, string(t) + ": not yet"
		}
		return true, string(t) + ": go"
	}
}

func seed() spec.Plan { return seedPlan(v1alpha1.DecisionAutomatic, 1) }

// richScenarios are rollouts the engine drives by itself, then rollouts
// that people steer.
func richScenarios() []richScenario {
	return append(drivenScenarios(), steeredScenarios()...)
}

func drivenScenarios() []richScenario {
	return []richScenario{
		{"progress with checks", seed, func(s *sim) {
			s.deploy("v2")
			s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
		}},
		{"pause and resume", seed, func(s *sim) {
			s.deploy("v2")
			s.advance(4 * time.Minute)
			s.step(rollout.Command{Kind: rollout.CommandPause, Actor: "bob", Reason: "lunch"})
			s.advance(20 * time.Minute)
			s.step(rollout.Command{Kind: rollout.CommandResume, Actor: "bob"})
			s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
		}},
		{"gate hooks", func() spec.Plan {
			return withHooks(seed(), v1alpha1.HookConfirmRollout, v1alpha1.HookPreRollout,
				v1alpha1.HookConfirmTrafficIncrease, v1alpha1.HookConfirmPromotion)
		}, func(s *sim) {
			s.hooks = closedUntil(s, t0.Add(3*time.Minute))
			s.deploy("v2")
			s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
		}},
		{"failing analysis and a replaced canary", seed, func(s *sim) {
			s.measure = failingFrom(v1alpha1.PercentOf(25))
			s.deploy("v2")
			s.advance(5 * time.Minute)
			s.deploy("v3")
			s.runUntil(v1alpha1.PhaseRolledBack, time.Hour)
		}},
	}
}

func steeredScenarios() []richScenario {
	return []richScenario{
		{"approval gate approved", func() spec.Plan { return approvalPlan(v1alpha1.ApprovalWait) }, func(s *sim) {
			s.deploy("v2")
			s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
			s.advance(90 * time.Minute) // past the approval's hour: still waiting
			s.step(rollout.Command{Kind: rollout.CommandApprove, Actor: "qa-lead", Reason: "tested on staging"})
			s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
		}},
		{"manual stages", func() spec.Plan { return seedPlan(v1alpha1.DecisionManual, 1) }, func(s *sim) {
			s.deploy("v2")
			for range 3 {
				s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
				s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
			}
		}},
		{"rollback on alarm", seed, func(s *sim) {
			s.deploy("v2")
			s.advance(90 * time.Second)
			s.alarms = []rollout.Alarm{{Metric: analysis.ErrorRateAlarm, Reason: "canary error rate 6% is higher"}}
			s.step()
			s.step(rollout.Command{Kind: rollout.CommandRetry, Actor: "bob"})
			s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
		}},
		{"hybrid anomaly approved", func() spec.Plan { return seedPlan(v1alpha1.DecisionHybrid, 0) }, func(s *sim) {
			s.measure = failingFrom(v1alpha1.PercentOf(25))
			s.deploy("v2")
			s.runUntil(v1alpha1.PhaseAwaitingDecision, time.Hour)
			s.advance(5 * time.Minute)
			s.measure = healthy
			s.step(rollout.Command{Kind: rollout.CommandApprove, Actor: "carol"})
			s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
		}},
		{"undo window", func() spec.Plan {
			p := withHooks(seed(), v1alpha1.HookContract)
			p.UndoWindow = 30 * time.Minute
			return p
		}, func(s *sim) {
			s.deploy("v2")
			s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
			s.advance(10 * time.Minute)
			s.step(rollout.Command{Kind: rollout.CommandUndo, Actor: "sre", Reason: "checkout latency"})
			s.step(rollout.Command{Kind: rollout.CommandRetry})
			s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
			s.advance(31 * time.Minute)
			s.step(rollout.Command{Kind: rollout.CommandUndo})
		}},
		{"set-weight", seed, func(s *sim) {
			s.deploy("v2")
			s.advance(2 * time.Minute)
			s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(12.5), Actor: "bob"},
				rollout.Command{Kind: rollout.CommandSetWeight}, rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(100)})
			s.advance(3 * time.Minute)
			s.step(rollout.Command{Kind: rollout.CommandPromoteFull, Actor: "bob"})
			s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(10)})
		}},
	}
}

// runRich plays a scenario with every Step checked and returns each
// decision in order.
func runRich(t *testing.T, sc richScenario) []decision {
	var trace []decision
	s := newSim(t, sc.plan())
	s.decide = recording(checkedStep(t), &trace)
	sc.drive(s)
	return trace
}

// TestWholeResultsAreDeterministic plays rich scenarios twice and
// compares every decision whole: the status, the actions, the events and
// the answers to commands. Within each run every Step is also taken twice
// on copies of its input, which are then overwritten (checkedStep).
func TestWholeResultsAreDeterministic(t *testing.T) {
	for _, sc := range richScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			first, second := runRich(t, sc), runRich(t, sc)
			if len(first) != len(second) {
				t.Fatalf("%d decisions, then %d", len(first), len(second))
			}
			for i := range first {
				if !reflect.DeepEqual(first[i], second[i]) {
					t.Fatalf("decision %d differs:\nfirst  %s\nsecond %s", i, first[i], second[i])
				}
			}
		})
	}
}
