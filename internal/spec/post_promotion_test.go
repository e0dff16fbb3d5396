package spec

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// postPromotionRefusals break a watch after promotion one way each.
var postPromotionRefusals = []struct {
	name   string
	watch  v1alpha1.PostPromotionSpec
	undo   *metav1.Duration
	field  string
	reason string
}{
	{"no duration", v1alpha1.PostPromotionSpec{}, nil, "spec.postPromotion.duration", "is required and must be positive, such as 10m, not 0s"},
	{"longer than the default undo window", v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: 20 * time.Minute}}, nil,
		"spec.postPromotion.duration", "20m0s exceeds the default undoWindow (15m0s): the undo after a failed watch needs the previous version still warm"},
	{"longer than the undo window", v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: 10 * time.Minute}}, dur(5 * time.Minute),
		"spec.postPromotion.duration", "10m0s exceeds spec.undoWindow (5m0s)"},
	{"undo turned off", v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: time.Minute}}, dur(0),
		"spec.postPromotion.duration", "1m0s exceeds spec.undoWindow (0s)"},
	{"a metric misspelt", v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: time.Minute},
		Metrics: []v1alpha1.MetricSpec{{Name: "error-rat"}}}, nil, "spec.postPromotion.metrics[0].name", `unknown metric "error-rat"; did you mean "error-rate"?`},
	{"a metric twice", v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: time.Minute},
		Metrics: []v1alpha1.MetricSpec{{Name: "error-rate"}, {Name: "error-rate"}}}, nil, "spec.postPromotion.metrics[1].name", `metric "error-rate" is already listed as metrics[0]`},
}

func TestValidateRefusesABadWatchAfterPromotion(t *testing.T) {
	for _, tt := range postPromotionRefusals {
		t.Run(tt.name, func(t *testing.T) {
			r := validRollout()
			r.Spec.PostPromotion, r.Spec.UndoWindow = &tt.watch, tt.undo
			errs := Validate(r)
			if len(errs) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(errs), errs)
			}
			if e := errs[0]; e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("got %s: %s\nwant %s: …%s…", e.Field, e.Reason, tt.field, tt.reason)
			}
		})
	}
}

func TestValidateRefusesAWatchWithNothingToMeasure(t *testing.T) {
	r := validRollout()
	r.Spec.Analysis = nil
	r.Spec.PostPromotion = &v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: time.Minute}}
	errs := Validate(r)
	if len(errs) != 1 || errs[0].Field != "spec.postPromotion.metrics" || !strings.Contains(errs[0].Reason, "the watch has nothing to measure") {
		t.Errorf("got %v", errs)
	}
}

func TestResolveWatchAfterPromotion(t *testing.T) {
	r := validRollout()
	r.Spec.Webhooks = []v1alpha1.WebhookSpec{{Name: "smoke", Type: v1alpha1.HookRollout, URL: "http://127.0.0.1:9100/smoke"}}
	r.Spec.PostPromotion = &v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: 15 * time.Minute}}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatal(errs)
	}
	p, err := Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	// Without metrics of its own, the watch reuses the analysis metrics,
	// but not the hook metrics, which answer about a canary.
	if pp := p.PostPromotion; pp == nil || pp.Duration != 15*time.Minute || len(pp.Metrics) != 1 || pp.Metrics[0].Name != "request-success-rate" {
		t.Fatalf("post-promotion plan %+v", p.PostPromotion)
	}
	r.Spec.PostPromotion.Metrics = []v1alpha1.MetricSpec{{Name: "latency-p99"}, {Name: "error-rate"}}
	if p, _ = Resolve(&r.Spec); len(p.PostPromotion.Metrics) != 2 || p.PostPromotion.Metrics[1].NoData != DefaultNoDataPolicy {
		t.Errorf("own metrics resolved to %+v", p.PostPromotion.Metrics)
	}
	r.Spec.PostPromotion = nil
	if p, _ = Resolve(&r.Spec); p.PostPromotion != nil {
		t.Errorf("a plan without a watch has %+v", p.PostPromotion)
	}
}
