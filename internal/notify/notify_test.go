package notify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Every type the spec accepts has a provider, so New never meets a valid
// spec it cannot build.
func TestProvidersCoverSpecTypes(t *testing.T) {
	for _, typ := range spec.NotifierTypes {
		if providers[typ] == nil {
			t.Errorf("no provider for notifier type %s", typ)
		}
	}
	if len(providers) != len(spec.NotifierTypes) {
		t.Errorf("%d providers for %d notifier types the spec accepts", len(providers), len(spec.NotifierTypes))
	}
}

// An unknown type is refused by New, never replaced by a default.
func TestNewUnknownType(t *testing.T) {
	n, err := New(v1alpha1.NotifierSpec{Type: "slak", URL: "https://hooks.example.test/x"})
	if err == nil || n != nil {
		t.Fatalf("New accepted an unknown type: %v, %v", n, err)
	}
}

func TestURLFromEnvAndFile(t *testing.T) {
	c := newCapture(t, nil)
	t.Setenv("PIPIT_TEST_HOOK", c.url()+"\n")
	file := filepath.Join(t.TempDir(), "hook-url")
	if err := os.WriteFile(file, []byte("  "+c.url()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []v1alpha1.NotifierSpec{
		{Type: "webhook", URLEnv: "PIPIT_TEST_HOOK"},
		{Type: "webhook", URLFile: file},
	} {
		n, err := New(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Notify(context.Background(), rolledBack()); err != nil {
			t.Fatal(err)
		}
	}
	reqs := c.requests()
	if len(reqs) != 2 || reqs[0].Path != secretPath || reqs[1].Path != secretPath {
		t.Fatalf("requests = %+v, want two to %s", reqs, secretPath)
	}
}

// Errors about a URL from the environment or a file name where it came
// from, never the URL.
func TestURLErrorsHideTheURL(t *testing.T) {
	t.Setenv("PIPIT_TEST_BAD", "ftp://hooks.example.test"+secretPath)
	t.Setenv("PIPIT_TEST_EMPTY", " ")
	file := filepath.Join(t.TempDir(), "hook-url")
	if err := os.WriteFile(file, []byte("hooks.example.test"+secretPath), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		spec v1alpha1.NotifierSpec
		want string
	}{
		{v1alpha1.NotifierSpec{Type: "slack", URLEnv: "PIPIT_TEST_BAD"}, "url from environment variable PIPIT_TEST_BAD: must be an absolute http or https URL"},
		{v1alpha1.NotifierSpec{Type: "slack", URLEnv: "PIPIT_TEST_EMPTY"}, "environment variable PIPIT_TEST_EMPTY is not set"},
		{v1alpha1.NotifierSpec{Type: "slack", URLEnv: "PIPIT_TEST_UNSET_VARIABLE"}, "environment variable PIPIT_TEST_UNSET_VARIABLE is not set"},
		{v1alpha1.NotifierSpec{Type: "slack", URLFile: file}, "url from file " + file + ": must be an absolute http or https URL"},
		{v1alpha1.NotifierSpec{Type: "slack", URLFile: file + ".missing"}, "url file:"},
		{v1alpha1.NotifierSpec{Type: "slack", URL: "ftp://hooks.example.test" + secretPath}, "url: must be an absolute http or https URL"},
	}
	for _, c := range cases {
		_, err := New(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) error = %v, want %q", c.spec, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error leaks the URL: %v", err)
		}
	}
}

func TestBuild(t *testing.T) {
	c := newCapture(t, nil)
	named, err := Build([]v1alpha1.NotifierSpec{
		{Type: "slack", URL: c.url()},
		{Name: "oncall", Type: "webhook", URL: c.url(), Severity: "error", Template: "{{.Rollout}}!",
			Timeout: &metav1.Duration{Duration: 2 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(named) != 2 {
		t.Fatalf("got %d notifiers", len(named))
	}
	if s := named[0]; s.Name != "slack" || s.MinSeverity != SeverityInfo || s.Template != nil || s.Timeout != 0 {
		t.Errorf("slack = %+v", s)
	}
	w := named[1]
	if w.Name != "oncall" || w.MinSeverity != SeverityError || w.Template == nil || w.Timeout != 2*time.Second {
		t.Errorf("oncall = %+v", w)
	}
	if _, ok := w.Notifier.(*Webhook); !ok {
		t.Errorf("oncall notifier is %T", w.Notifier)
	}

	_, err = Build([]v1alpha1.NotifierSpec{{Type: "slack", URL: c.url()}, {Type: "slack", URL: c.url()}})
	if err == nil || !strings.Contains(err.Error(), "name used twice") {
		t.Errorf("duplicate names: error = %v", err)
	}
}
