package convert

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// argoBlueGreenDropped are the fields of an Argo blue-green strategy with
// no pipit equivalent.
var argoBlueGreenDropped = map[string]string{
	"previewReplicaCount":         "pipit runs the preview with the target's replicas",
	"previewMetadata":             "pipit labels its copies itself",
	"activeMetadata":              "pipit labels its copies itself",
	"antiAffinity":                "pipit does not add affinity rules between its copies",
	"scaleDownDelayRevisionLimit": "pipit keeps one previous version, for spec.undoWindow",
	"abortScaleDownDelaySeconds":  "pipit scales the preview down at once after a rollback",
	"maxUnavailable":              "pipit's copies are Deployments of their own, which keep their default update strategy",
}

// argoBlueGreen converts an Argo blue-green strategy into pipit's.
func (c *converter) argoBlueGreen(f field, r *v1alpha1.Rollout) {
	bg := &v1alpha1.BlueGreenStrategy{PreviewService: f.get("previewService").str()}
	r.Spec.Strategy.BlueGreen = bg
	if active := f.get("activeService").str(); active != "" {
		r.Spec.Kubernetes = &v1alpha1.KubernetesSpec{Service: &v1alpha1.KubernetesService{Name: active}}
	}
	if on, ok := f.get("autoPromotionEnabled").bool(); ok && !on {
		r.Spec.Decision = v1alpha1.DecisionManual
	}
	bg.AutoPromotionAfter = f.get("autoPromotionSeconds").duration(true)
	r.Spec.UndoWindow = f.get("scaleDownDelaySeconds").duration(true)
	dropAll(f, argoBlueGreenDropped)
	if pre := f.get("prePromotionAnalysis"); pre.ok() {
		metrics, checks, interval := c.argoAnalysis(pre, r)
		c.addMetrics(r, metrics, interval)
		bg.Checks = &checks
	}
	if post := f.get("postPromotionAnalysis"); post.ok() {
		c.argoPostPromotion(post, r)
	}
}

// argoPostPromotion converts the analysis after the switch into pipit's
// watch of the new stable version, as long as the template's count of
// measurements at its interval.
func (c *converter) argoPostPromotion(f field, r *v1alpha1.Rollout) {
	metrics, checks, interval := c.argoAnalysis(f, r)
	if len(metrics) == 0 {
		return
	}
	every := time.Minute
	if interval != nil {
		every = interval.Duration
	}
	watch := time.Duration(checks) * every
	if undo := r.Spec.UndoWindow; undo != nil && undo.Duration < watch {
		f.noteHere(fmt.Sprintf("the watch after the switch (%s) outlasts scaleDownDelaySeconds (%s), pipit's undoWindow, while the undo needs the old version warm: the undo window is made %s", watch, undo.Duration, watch))
		r.Spec.UndoWindow = &metav1.Duration{Duration: watch}
	}
	r.Spec.PostPromotion = &v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: watch}, Metrics: metrics}
}
