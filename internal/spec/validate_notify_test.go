package spec

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestValidateNotifier(t *testing.T) {
	const u = "https://hooks.example.test/services/x"
	cases := []struct {
		name string
		spec v1alpha1.NotifierSpec
		want string // part of the error; empty: valid
	}{
		{"minimal", v1alpha1.NotifierSpec{Type: "slack", URL: u}, ""},
		{"everything", v1alpha1.NotifierSpec{Name: "ops", Type: "webhook", URLEnv: "HOOK", Severity: "warn",
			Template: "{{.Rollout}}", Headers: map[string]string{"X-A": "b"}, Timeout: &metav1.Duration{Duration: time.Second}}, ""},
		{"unknown type", v1alpha1.NotifierSpec{Type: "pagerduty", URL: u}, `unknown type "pagerduty"`},
		{"no type", v1alpha1.NotifierSpec{URL: u}, "unknown type"},
		{"no url", v1alpha1.NotifierSpec{Type: "teams"}, "exactly one of url, urlEnv and urlFile"},
		{"two urls", v1alpha1.NotifierSpec{Type: "teams", URL: u, URLFile: "/x"}, "exactly one of"},
		{"not http", v1alpha1.NotifierSpec{Type: "discord", URL: "ftp://x/y"}, "notifier discord: url: "},
		{"no host", v1alpha1.NotifierSpec{Type: "discord", URL: "https:///y"}, "no host"},
		{"bad severity", v1alpha1.NotifierSpec{Type: "slack", URL: u, Severity: "critical"}, `unknown severity "critical"`},
		{"bad timeout", v1alpha1.NotifierSpec{Type: "slack", URL: u, Timeout: &metav1.Duration{}}, "notifier slack: timeout: must be positive"},
		{"bad template", v1alpha1.NotifierSpec{Name: "ops", Type: "slack", URL: u, Template: "{{.Nope}}"}, "notifier ops: template:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateNotifier(c.spec)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// notifierRefusals break a rollout's one notifier one way each: the
// refusal names the notifier's field.
var notifierRefusals = []refusal{
	{"unknown type", func(r *v1alpha1.Rollout) { r.Spec.Notifications[0].Type = "pager" }, "spec.notifications[0].type", `unknown type "pager"`},
	{"bad url", func(r *v1alpha1.Rollout) { r.Spec.Notifications[0].URL = "ftp://x/y" }, "spec.notifications[0].url", "http or https"},
	{"two urls", func(r *v1alpha1.Rollout) { r.Spec.Notifications[0].URLEnv = "HOOK" }, "spec.notifications[0]", "exactly one of url, urlEnv and urlFile"},
	{"bad severity", func(r *v1alpha1.Rollout) { r.Spec.Notifications[0].Severity = "critical" }, "spec.notifications[0].severity", `unknown severity "critical"`},
	{"bad timeout", func(r *v1alpha1.Rollout) { r.Spec.Notifications[0].Timeout = &metav1.Duration{} }, "spec.notifications[0].timeout", "must be positive"},
	{"bad template", func(r *v1alpha1.Rollout) { r.Spec.Notifications[0].Template = "{{.Nope}}" }, "spec.notifications[0].template", "Nope"},
}

func TestValidateNotificationsNameTheField(t *testing.T) {
	withNotifier := func() *v1alpha1.Rollout {
		r := validRollout()
		r.Spec.Notifications = []v1alpha1.NotifierSpec{{Name: "ops", Type: "slack", URL: "https://hooks.example.test/x"}}
		return r
	}
	if errs := Validate(withNotifier()); len(errs) > 0 {
		t.Fatal(errs)
	}
	checkRefusals(t, withNotifier, notifierRefusals)
}

func TestParseSeverity(t *testing.T) {
	for in, want := range map[v1alpha1.NotifySeverity]Severity{"": SeverityInfo, "debug": SeverityDebug, "info": SeverityInfo, "warn": SeverityWarn, "error": SeverityError} {
		got, err := ParseSeverity(in)
		if err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseSeverity(v1alpha1.NotifySeverity(want.String())); err != nil || back != want {
			t.Errorf("round trip of %v gave %v, %v", want, back, err)
		}
	}
	for _, bad := range []v1alpha1.NotifySeverity{"warning", "ERROR", "critical"} {
		if _, err := ParseSeverity(bad); err == nil {
			t.Errorf("ParseSeverity(%q) accepted", bad)
		}
	}
}

func TestParseTemplateErrors(t *testing.T) {
	for _, src := range []string{
		`{{.Rollout`,          // syntax
		`{{.Event.Reson}}`,    // misspelt field, found by the trial run
		`{{template "nope"}}`, // undefined template
	} {
		if _, err := ParseNotifyTemplate(src); err == nil || !strings.HasPrefix(err.Error(), "template: ") {
			t.Errorf("ParseNotifyTemplate(%q) error = %v, want a template error", src, err)
		}
	}
}
