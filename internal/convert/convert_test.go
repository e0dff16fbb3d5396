package convert

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/lint"
	"github.com/pipit-dev/pipit/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// referenceDir holds real Flagger and Argo Rollouts manifests, beside the
// repository (CI has ../shared beside the clone).
var referenceDir = filepath.Join("..", "..", "..", "shared", "reference", "manifests")

// conversion is what converting some files gave.
type conversion struct {
	res   *Result
	err   error
	out   []byte
	notes string
}

func convertFiles(t *testing.T, files ...string) conversion {
	t.Helper()
	var sources []*spec.Source
	for _, f := range files {
		src, err := spec.ReadManifests(f, nil)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		sources = append(sources, src)
	}
	res, err := Convert(sources, Options{})
	var out bytes.Buffer
	if werr := Write(&out, res.Objects); werr != nil {
		t.Fatal(werr)
	}
	var notes strings.Builder
	for _, n := range res.Notes {
		if n.Reason == "" {
			t.Errorf("%s: a note without a reason", n)
		}
		notes.WriteString(n.String() + "\n")
	}
	return conversion{res: res, err: err, out: out.Bytes(), notes: notes.String()}
}

// validOutput reads the output as `pipit validate -` does: every rollout
// in it must validate with the templates written beside it, and the
// Deployments beside them are set aside.
// `pipit lint` must find no error in it either: its warnings are the
// source's own choices (a pause without timeout), carried over.
func validOutput(t *testing.T, c conversion) *spec.Source {
	t.Helper()
	src, err := spec.ReadSource(spec.Stdin, bytes.NewReader(c.out))
	if err == nil {
		// The rollouts' templateRefs name templates of the output.
		if errs := spec.ExpandSources([]*spec.Source{src}); len(errs) > 0 {
			err = errs
		}
	}
	if err != nil {
		t.Errorf("the output does not validate:\n%v\noutput:\n%s\nnotes:\n%s", err, c.out, c.notes)
		return nil
	}
	findings, err := lint.Lint(src, lint.Options{})
	if err != nil {
		t.Errorf("lint: %v", err)
	}
	for _, f := range findings {
		if f.Severity == lint.Error {
			t.Errorf("lint: %s", f)
		}
	}
	return src
}

// referenceCase is what converting one reference manifest must give.
type referenceCase struct {
	// rollouts and deployments are how many of each are written.
	rollouts, deployments int
	// noted are fields that must be named as not carried over or changed.
	noted []string
	// nothing: the file holds no Canary or Rollout.
	nothing bool
}

var referenceCases = map[string]referenceCase{
	"flagger/apisix-canary.yaml":                {rollouts: 1, noted: []string{"spec.provider", "spec.routeRef", "spec.analysis.webhooks[0].metadata"}},
	"flagger/contour-canary.yaml":               {rollouts: 1, noted: []string{"spec.provider", "spec.autoscalerRef", "spec.service.timeout", "spec.service.retries"}},
	"flagger/gatewayapi-canary.yaml":            {rollouts: 1, noted: []string{"spec.autoscalerRef", "spec.service.hosts", "spec.analysis.webhooks[0].metadata"}},
	"flagger/kubernetes-blue-green-canary.yaml": {rollouts: 1, noted: []string{"spec.service.portDiscovery", "spec.autoscalerRef"}},
	"flagger/nginx-canary.yaml":                 {rollouts: 1, noted: []string{"spec.provider", "spec.ingressRef", "spec.autoscalerRef"}},
	"flagger/traefik-canary.yaml":               {rollouts: 1, noted: []string{"spec.provider", "spec.analysis.webhooks[1].metadata"}},
	"argo/cluster-analysis-templates.yaml":      {nothing: true},
	"argo/istio-mirror.yaml": {rollouts: 1, deployments: 1, noted: []string{
		"spec.strategy.canary.trafficRouting.managedRoutes", "spec.strategy.canary.trafficRouting.istio.virtualService.routes",
		"spec.strategy.canary.steps[0].setCanaryScale", "spec.strategy.canary.steps[1].setMirrorRoute.match",
	}},
	"argo/rollout-baseline-vs-canary.yaml": {rollouts: 1, deployments: 1, noted: []string{"spec.strategy.canary.steps[0].experiment"}},
	"argo/rollout-canary-preview.yaml":     {rollouts: 1, deployments: 1, noted: []string{"spec.strategy.canary.steps[0].experiment"}},
	"argo/rollout-experiment-step.yaml":    {rollouts: 1, deployments: 1, noted: []string{"spec.strategy.canary.steps[1].experiment"}},
	"argo/rollout-template-ref.yaml":       {rollouts: 1, noted: []string{"spec.replicas", "spec.revisionHistoryLimit"}},
	"argo/workload-ref.yaml":               {rollouts: 1, noted: []string{"spec.replicas"}},
}

// TestReferenceManifests converts every real Flagger and Argo manifest of
// ../shared/reference/manifests: each converts into rollouts that
// validate, and the fields that do not carry over are named.
func TestReferenceManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(referenceDir, "*", "*.yaml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("found %d reference manifests in %s (%v); CI has ../shared beside the clone", len(files), referenceDir, err)
	}
	for _, f := range files {
		name := filepath.ToSlash(strings.TrimPrefix(f, referenceDir+string(filepath.Separator)))
		want, ok := referenceCases[name]
		if !ok {
			t.Errorf("%s: a reference manifest without a case in referenceCases", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			c := convertFiles(t, f)
			if want.nothing {
				if !errors.Is(c.err, ErrNothingToConvert) || !strings.Contains(c.notes, "not used by any Canary or Rollout of the input") {
					t.Errorf("err = %v, want ErrNothingToConvert and the templates named; notes:\n%s", c.err, c.notes)
				}
				return
			}
			if c.err != nil || len(c.res.Failed) > 0 {
				t.Fatalf("err %v, failed %v\nnotes:\n%s", c.err, c.res.Failed, c.notes)
			}
			src := validOutput(t, c)
			if src != nil && (len(src.Documents) != want.rollouts || len(src.Others) != want.deployments) {
				t.Errorf("wrote %d rollouts and %d other objects, want %d and %d", len(src.Documents), len(src.Others), want.rollouts, want.deployments)
			}
			for _, field := range want.noted {
				if !slices.ContainsFunc(c.res.Notes, func(n Note) bool { return n.Field == field }) {
					t.Errorf("%s is not named; notes:\n%s", field, c.notes)
				}
			}
		})
	}
}

// TestClusterTemplateProviderNamed converts the reference
// ClusterAnalysisTemplate with a Rollout that uses it: its Job provider
// has no pipit equivalent, and the note says so.
func TestClusterTemplateProviderNamed(t *testing.T) {
	c := convertFiles(t, filepath.Join(referenceDir, "argo", "cluster-analysis-templates.yaml"), filepath.Join("testdata", "cluster-template-user.yaml"))
	if c.err != nil || len(c.res.Failed) > 0 {
		t.Fatalf("err %v, failed %v\n%s", c.err, c.res.Failed, c.notes)
	}
	validOutput(t, c)
	if !strings.Contains(c.notes, `ClusterAnalysisTemplate always-pass: spec.metrics[0].provider: job: pipit reads metrics from Prometheus and JSON web endpoints only; metric "pass" is not carried over`) {
		t.Errorf("the job provider is not named:\n%s", c.notes)
	}
}

// TestGolden converts the cases of testdata and compares the manifests and
// the notes with the golden files (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, name := range []string{"argo-analysis", "argo-bluegreen", "flagger-ab", "flagger-mirror"} {
		t.Run(name, func(t *testing.T) {
			c := convertFiles(t, filepath.Join("testdata", name+".yaml"))
			if c.err != nil || len(c.res.Failed) > 0 {
				t.Fatalf("err %v, failed %v\n%s", c.err, c.res.Failed, c.notes)
			}
			validOutput(t, c)
			got := string(c.out) + "# notes\n" + c.notes
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

func rollouts(objs []any) []*v1alpha1.Rollout {
	var out []*v1alpha1.Rollout
	for _, o := range objs {
		if r, ok := o.(*v1alpha1.Rollout); ok {
			out = append(out, r)
		}
	}
	return out
}
