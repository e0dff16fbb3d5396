package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// blindCanary: a rollout without a metric that can fail promotes a broken
// version on schedule. A metric can fail when it is not a dry run and has
// a bound, a condition or a comparison; a rollback hook, or the proxy's
// sequential error-rate test (standalone, on by default), can also pull
// the canary back.
func blindCanary(t *target) []hit {
	if t.r.Spec.Service != nil && t.plan.Analysis.Sequential.Enabled {
		return nil
	}
	if len(t.plan.Hooks[v1alpha1.HookRollback]) > 0 {
		return nil
	}
	field := "spec"
	if a := t.r.Spec.Analysis; a != nil {
		field = "spec.analysis"
		if slices.ContainsFunc(a.Metrics, canFail) {
			return nil
		}
	}
	return []hit{{field: field,
		problem: "nothing watches the canary: no metric can fail, so a version that errors or slows down is promoted on schedule",
		fix:     "add spec.analysis.metrics with a thresholdRange (such as request-success-rate, min 99), or a rollback webhook"}}
}

func canFail(m v1alpha1.MetricSpec) bool {
	return !m.DryRun && (m.ThresholdRange != nil || m.SuccessCondition != "" || m.FailureCondition != "" || m.Compare != nil)
}

// firstStepTooBig: the first weight is the blast radius of a version that
// is broken from its first request.
func firstStepTooBig(t *target) []hit {
	for i, s := range handWrittenSteps(t.r) {
		if s.SetWeight == nil {
			continue
		}
		if w := s.SetWeight.Float(); w > MaxFirstStep {
			return []hit{{field: stepField(i, "setWeight"),
				problem: fmt.Sprintf("the first step sends %s of users to a version no user has tried yet; if it is broken, all of them see it", pct(w)),
				fix:     fmt.Sprintf("start at %s or less (5%% or 10%% is usual) and raise the weight once the analysis passed", pct(MaxFirstStep))}}
		}
		return nil
	}
	return nil
}

// weightJump: a large increase throws away what the small stages learned.
// The promotion after the last step is an increase to 100 too.
func weightJump(t *target) []hit {
	var (
		out       []hit
		last      float64
		lastField string
	)
	for i, s := range handWrittenSteps(t.r) {
		if s.SetWeight == nil {
			continue
		}
		w := s.SetWeight.Float()
		if lastField != "" && w-last > t.maxStep {
			out = append(out, jump(stepField(i, "setWeight"), last, w, t.maxStep, false))
		}
		last, lastField = w, stepField(i, "setWeight")
	}
	if lastField != "" && 100-last > t.maxStep {
		out = append(out, jump(lastField, last, 100, t.maxStep, true))
	}
	return out
}

// jump reports an increase from one weight to the next, or with
// promotion from the last weight to the promotion's 100%.
func jump(field string, from, to, maxStep float64, promotion bool) hit {
	what := fmt.Sprintf("the weight jumps from %s to %s", pct(from), pct(to))
	if promotion {
		what = fmt.Sprintf("this is the last weight, so the promotion jumps from %s to 100%%", pct(from))
	}
	return hit{field: field,
		problem: fmt.Sprintf("%s, more than %s at once: a fault that only shows under load reaches everyone before the analysis can see it", what, pct(maxStep)),
		fix:     fmt.Sprintf("add intermediate setWeight steps, each at most %s above the last, with a pause or analysis after each", pct(maxStep))}
}

// waitWithoutTimeout: a wait for a person with no end holds the canary at
// its weight for as long as nobody looks, through nights and weekends.
func waitWithoutTimeout(t *target) []hit {
	var out []hit
	for i, s := range t.r.Spec.Strategy.Steps {
		switch {
		case s.Approval != nil && s.Approval.Timeout == nil:
			out = append(out, hit{field: stepField(i, "approval"),
				problem: "the approval waits for ever: if nobody answers, the canary keeps its share of users indefinitely, and the next release finds it half done",
				fix:     "give it a timeout (such as 4h) and onTimeout: rollback, or onTimeout: wait to keep waiting with the expiry recorded and notified"})
		case s.Pause != nil && s.Pause.Duration == nil:
			out = append(out, hit{field: stepField(i, "pause"),
				problem: "the pause has no duration, so it waits for `pipit promote` for ever, with the canary serving its share of users meanwhile",
				fix:     "give the pause a duration, or use an approval step with a timeout"})
		}
	}
	return out
}

// migrationWithoutContract: an expand migration is only safe when the old
// version keeps working on the expanded schema, and the contract half
// only runs once nothing can roll back to the old version.
func migrationWithoutContract(t *target) []hit {
	var migration = -1
	contract := false
	for i, h := range t.r.Spec.Webhooks {
		if h.Type == v1alpha1.HookContract {
			contract = true
		} else if migration < 0 && isMigration(h) {
			migration = i
		}
	}
	if migration < 0 {
		return nil
	}
	var out []hit
	if !contract {
		out = append(out, hit{field: fmt.Sprintf("spec.webhooks[%d]", migration),
			problem: "a database migration runs with the rollout but no contract hook: either it changes the schema in a way the old version cannot read, which breaks stable and any rollback, or the old columns are never cleaned up",
			fix:     "split it into expand/contract: expand here (only additions the old version ignores), and a hook of type contract for the removals, which runs once the undo window closed"})
	}
	if t.plan.UndoWindow == 0 {
		out = append(out, hit{field: "spec.undoWindow",
			problem: "undoWindow is 0, so a contract step would run right after the promotion, while the previous version could still be needed",
			fix:     "set undoWindow (such as 1h): pipit undo works meanwhile, and contract hooks wait for it to close"})
	}
	return out
}

// isMigration tells a database migration hook by its name or what it runs.
func isMigration(h v1alpha1.WebhookSpec) bool {
	text := strings.ToLower(strings.Join(append([]string{h.Name, h.URL}, h.Command...), " "))
	return strings.Contains(text, "migrat") || strings.Contains(text, "schema")
}

// safeMethods are the methods RFC 9110 calls safe: copying them changes
// nothing. PUT and DELETE are idempotent but not safe: the copy does the
// write a second time, on the canary's side of a shared database.
var safeMethods = map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true}

// mirrorWrites: a mirrored request is a real request; if it writes, it
// writes twice.
func mirrorWrites(t *target) []hit {
	p, tr := "spec.service.traffic", (*v1alpha1.TrafficSpec)(nil)
	if s := t.r.Spec.Service; s != nil {
		tr = s.Traffic
	} else if k := t.r.Spec.Kubernetes; k != nil {
		p, tr = "spec.kubernetes.traffic", k.Traffic
	}
	if tr == nil || tr.Mirror == nil {
		return nil
	}
	const problem = "mirroring copies %s to the canary: each copy does the work again (a second order, a second e-mail, a second charge) on whatever the versions share"
	if len(tr.Mirror.Methods) == 0 {
		fix := "list the methods safe to repeat: methods: [GET, HEAD]"
		if t.r.Spec.Service == nil {
			fix = "Kubernetes routers copy every method: mirror only services whose writes are idempotent and isolated, or use the standalone proxy's mirror.methods"
		}
		return []hit{{field: p + ".mirror", problem: fmt.Sprintf(problem, "every method (POST included)"), fix: fix}}
	}
	var out []hit
	for i, m := range tr.Mirror.Methods {
		if !safeMethods[m] {
			out = append(out, hit{field: fmt.Sprintf("%s.mirror.methods[%d]", p, i),
				problem: fmt.Sprintf(problem, m+" requests"),
				fix:     "keep only GET, HEAD, OPTIONS and TRACE in mirror.methods"})
		}
	}
	return out
}

// stickyWithoutUserKey: the sticky cookie is handed out at random, so the
// same user gets another version on another device or after clearing
// cookies, and clients without cookies flip at every request.
func stickyWithoutUserKey(t *target) []hit {
	s := t.r.Spec.Service
	if s == nil || s.Traffic == nil || s.Traffic.StickySession == nil || len(s.Traffic.UserKey) > 0 {
		return nil
	}
	return []hit{{field: "spec.service.traffic.stickySession",
		problem: "sticky sessions without a user key keep a browser on its version, not a user: the same user switches versions on another device or after the cookie expires, and API clients without cookies switch at every request",
		fix:     "add spec.service.traffic.userKey (a header or cookie holding the user's id), so the version follows the user"}}
}

// noRollbackNotification: a rollback nobody hears of leaves the team
// believing the new version is out.
func noRollbackNotification(t *target) []hit {
	if len(t.r.Spec.Notifications) > 0 || len(t.plan.Hooks[v1alpha1.HookEvent]) > 0 || len(t.plan.Hooks[v1alpha1.HookPostRollout]) > 0 {
		return nil
	}
	return []hit{{field: "spec",
		problem: "nobody is told when the rollout rolls back: the team goes on believing the new version is out until someone looks",
		fix:     "add spec.notifications (slack, teams, discord or webhook), or an event or post-rollout webhook"}}
}

// noReadiness: traffic reaches a replica as soon as its port accepts
// connections, before it loaded its configuration or warmed its caches.
func noReadiness(t *target) []hit {
	var out []hit
	if s := t.r.Spec.Service; s != nil {
		for i, u := range []*v1alpha1.Upstream{&s.Stable, s.Canary} {
			if u != nil && u.Process != nil && u.Process.Readiness == nil {
				out = append(out, hit{field: "spec.service." + [...]string{"stable", "canary"}[i] + ".process",
					problem: "the processes have no readiness probe, so they get traffic as soon as their port accepts connections, before they can answer: every start and restart fails requests",
					fix:     "add readiness: {path: /health} (an endpoint that answers only once the process can serve)"})
			}
		}
	}
	targets := map[string]bool{}
	if ref := t.r.Spec.TargetRef; ref != nil {
		targets[ref.Name] = true
	}
	for _, ref := range t.r.Spec.TargetRefs {
		targets[ref.Name] = true
	}
	for _, o := range t.others {
		if o.Kind == "Deployment" && targets[o.Name] {
			out = append(out, deploymentWithoutReadiness(o)...)
		}
	}
	return out
}

// deploymentWithoutReadiness reports the containers of a Deployment that
// have no readinessProbe.
func deploymentWithoutReadiness(o *spec.Other) []hit {
	containers := spec.Field(spec.Field(spec.Field(spec.Field(o.Root, "spec"), "template"), "spec"), "containers")
	if containers == nil {
		return nil
	}
	var out []hit
	for _, c := range containers.Content {
		if spec.Field(c, "readinessProbe") != nil {
			continue
		}
		name := "?"
		if n := spec.Field(c, "name"); n != nil {
			name = n.Value
		}
		out = append(out, hit{other: o, line: c.Line, column: c.Column,
			problem: fmt.Sprintf("container %s of Deployment %s has no readinessProbe, so its pods get traffic as soon as they start: every canary pod fails requests while it warms up, and the analysis blames the version", name, o.Name),
			fix:     "add a readinessProbe (httpGet on an endpoint that answers only once the container can serve)"})
	}
	return out
}
