package convert

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// argoSpecDropped are the fields of an Argo Rollout's spec with no pipit
// equivalent.
var argoSpecDropped = map[string]string{
	"paused":                "pipit has no paused state in the spec; use pipit pause",
	"restartAt":             "pipit does not restart pods; use kubectl rollout restart on the Deployment",
	"progressDeadlineAbort": "pipit always rolls back when the progress deadline passes",
	"rollbackWindow":        "pipit's undo covers the last promotion within spec.undoWindow",
	"analysis":              "pipit keeps the analysis of the current rollout in its status, not a history of runs",
	"minReadySeconds":       "pipit's copies become ready as their pods do; set minReadySeconds on the Deployment",
}

// argoRollout converts an Argo Rollout: its workload becomes the target
// (and, when embedded, a Deployment beside it), its strategy pipit's.
func (c *converter) argoRollout(d *doc) []any {
	r := newRollout(d)
	s := d.top().get("spec")
	out := []any{r}
	if ref := s.get("workloadRef"); ref.ok() {
		if kind := ref.get("kind").str(); kind != "Deployment" {
			ref.get("kind").noteHere(fmt.Sprintf("is %q: pipit rolls out Deployments only, so the Rollout is not converted", kind))
			return nil
		}
		ref.get("apiVersion")
		r.Spec.TargetRef = &v1alpha1.TargetRef{Name: ref.get("name").str()}
		ref.drop("scaleDown", "pipit rolls out the Deployment itself, which must keep its replicas: set them on it")
		if n := s.get("replicas"); n.ok() {
			n.noteHere(fmt.Sprintf("Argo scaled Deployment %s down and ran %s replicas of its own; pipit gives its copies the Deployment's replicas: set replicas: %s on the Deployment", r.Spec.TargetRef.Name, n.str(), n.str()))
		}
		s.drop("revisionHistoryLimit", "pipit keeps no ReplicaSet history of its own; set it on the Deployment")
		s.drop("minReadySeconds", "pipit's copies become ready as their pods do; set minReadySeconds on the Deployment")
		s.drop("selector", "pipit's copies take the Deployment's own selector")
	} else {
		dep := argoDeployment(s, r)
		if dep == nil {
			s.noteHere("has neither workloadRef nor template: nothing to roll out, so the Rollout is not converted")
			return nil
		}
		r.Spec.TargetRef = &v1alpha1.TargetRef{Name: r.Name}
		out = append(out, dep)
	}
	r.Spec.ProgressDeadline = s.get("progressDeadlineSeconds").duration(true)
	dropAll(s, argoSpecDropped)
	st := s.get("strategy")
	switch canary, bg := st.get("canary"), st.get("blueGreen"); {
	case canary.ok():
		c.argoCanary(canary, r)
	case bg.ok():
		c.argoBlueGreen(bg, r)
	default:
		st.noteHere("has neither canary nor blueGreen; the converted rollout waits at one pause for `pipit promote`")
		r.Spec.Strategy.Steps = []v1alpha1.Step{{Pause: &v1alpha1.PauseStep{}}}
	}
	return out
}

// argoDeployment returns the Deployment holding an Argo Rollout's
// embedded pod template, named as the Rollout, or nil when it has none.
func argoDeployment(s field, r *v1alpha1.Rollout) map[string]any {
	tmpl := s.get("template")
	if !tmpl.ok() {
		return nil
	}
	meta := map[string]any{"name": r.Name}
	if r.Namespace != "" {
		meta["namespace"] = r.Namespace
	}
	if len(r.Labels) > 0 {
		meta["labels"] = r.Labels
	}
	ds := map[string]any{}
	for _, k := range []string{"template", "selector"} {
		var v any
		if s.get(k).decode(&v) {
			ds[k] = v
		}
	}
	for _, k := range []string{"replicas", "revisionHistoryLimit", "minReadySeconds"} {
		if n, ok := s.get(k).int(); ok {
			ds[k] = n
		}
	}
	return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": ds}
}
