package notify

import (
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

func TestDefaultText(t *testing.T) {
	W, N := v1alpha1.EventWarning, v1alpha1.EventNormal
	cases := []struct {
		name    string
		rollout string
		e       v1alpha1.Event
		fields  map[string]string
		want    string
	}{
		{"evidence wins over the message", "checkout", event(W, "RolledBack", "RolledBack: all traffic on stable v1; canary v2: request-success-rate 91% < min 99%"),
			map[string]string{FieldCanary: "v2", FieldEvidence: "request-success-rate 91% < min 99%"},
			"checkout: Rolled back canary v2 — request-success-rate 91% < min 99%"},
		{"message without evidence", "checkout", event(N, "Started", "Rollout of canary v2 started by alice"),
			map[string]string{FieldCanary: "v2"}, "checkout: Started canary v2 — Rollout of canary v2 started by alice"},
		{"no canary known", "checkout", event(W, "Failed", "progress deadline passed"), nil,
			"checkout: Rollout failed for canary — progress deadline passed"},
		{"unknown reason in words", "web", event(W, "PreRolloutHookFailed", "hook db-check answered 500"), map[string]string{FieldCanary: "v3"},
			"web: Pre rollout hook failed — hook db-check answered 500"},
		{"no rollout, no message", "", event(N, "Promoted", ""), map[string]string{FieldCanary: "v2"}, "Promoted canary v2"},
		{"an experiment's winner", "shop", event(N, "ExperimentConcluded", "Experiment concluded: winner treatment (v2) — conversion on checkout: control 10.00% (90/900), treatment 15.00% (135/900)"),
			map[string]string{FieldCanary: "v2"},
			"shop: Experiment concluded for canary v2 — Experiment concluded: winner treatment (v2) — conversion on checkout: control 10.00% (90/900), treatment 15.00% (135/900)"},
		{"headline not about the canary", "web", event(N, "Installed", "loaded from web.yaml"), map[string]string{FieldCanary: "v2"},
			"web: Installed — loaded from web.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := DefaultText(Message{Rollout: c.rollout, Event: c.e, Fields: c.fields})
			if got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// Every reason the engine emits has a headline of its own.
func TestHeadlinesCoverEngineReasons(t *testing.T) {
	for _, r := range []string{"Installed", "Started", "CanaryReplaced", "CanaryReady", "WeightChanged", "CheckPassed",
		"CheckInconclusive", "CheckFailed", "PauseEnded", "AwaitingDecision", "Approved", "StepSkipped", "Paused", "Resumed",
		"Promoting", "PromotedFull", "Promoted", "RollingBack", "RolledBack", "Aborted", "Failed", "Retried",
		"ExperimentStarted", "ExperimentConcluded"} {
		if _, ok := headlines[r]; !ok {
			t.Errorf("no headline for %s", r)
		}
	}
}

func TestTemplateRender(t *testing.T) {
	tpl, err := ParseTemplate(`[{{.Severity}}] {{.Rollout}} {{.Event.Reason}} at {{.Event.Weight}}: {{.Fields.metric}}{{.Fields.missing}} | {{.Default}}`)
	if err != nil {
		t.Fatal(err)
	}
	m := rolledBack()
	got, err := tpl.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	want := "[error] checkout RolledBack at 0%: request-success-rate | checkout: Rolled back canary v2 — request-success-rate 91% < min 99%"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// The sample templates are tried on at validation has the severity and
// default text this package gives its event, so that a template sees at
// validation what it will see when it runs.
func TestSpecSampleMatchesRendering(t *testing.T) {
	sample := spec.SampleNotification()
	m := Message{Rollout: sample.Rollout, Event: sample.Event, Severity: SeverityOf(sample.Event), Fields: sample.Fields}
	if m.Severity != sample.Severity {
		t.Errorf("sample severity %s, SeverityOf gives %s", sample.Severity, m.Severity)
	}
	if got := DefaultText(m); got != sample.Default {
		t.Errorf("sample default text %q, DefaultText gives %q", sample.Default, got)
	}
}

// A template can still fail on a message unlike the trial one; Render says
// so rather than sending half a text.
func TestTemplateRenderError(t *testing.T) {
	tpl, err := ParseTemplate(`{{if eq .Event.Reason "Started"}}{{.Event.Nope}}{{end}}ok`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(Message{Event: event(v1alpha1.EventNormal, "Started", "")}); err == nil {
		t.Error("Render succeeded on a missing field")
	}
}
