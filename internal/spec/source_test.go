package spec

import (
	"errors"
	"strings"
	"testing"
)

const sourceStream = `apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  targetRef: {name: web}
  strategy:
    steps:
      - setWeight: 10
      - pause: {duration: 1m}
`

// TestReadSourceStdin: standard input is read as a file named <stdin>;
// the Service is kept aside, and the rollout's fields have positions.
func TestReadSourceStdin(t *testing.T) {
	src, err := ReadSource(Stdin, strings.NewReader(sourceStream))
	if err != nil {
		t.Fatal(err)
	}
	if src.Name != "<stdin>" || len(src.Documents) != 1 || len(src.Others) != 1 {
		t.Fatalf("source: %+v", src)
	}
	if o := src.Others[0]; o.String() != "<stdin>:1: Service web (v1)" || o.Root == nil {
		t.Errorf("other: %v", o)
	}
	doc := src.Documents[0]
	for field, want := range map[string][2]int{
		"spec.strategy.steps[0].setWeight":      {12, 9},
		"spec.strategy.steps[1].pause.duration": {13, 17},
		"spec.analysis":                         {8, 1}, // not written: its parent, spec
	} {
		if line, col := doc.Position(field); line != want[0] || col != want[1] {
			t.Errorf("Position(%s) = %d:%d, want %d:%d", field, line, col, want[0], want[1])
		}
	}
}

// TestReadSourceKeepsPipitMistakes: a document of pipit's own API with a
// misspelled kind is still refused, not skipped; ParseFile, which the
// daemon uses, skips nothing.
func TestReadSourceKeepsPipitMistakes(t *testing.T) {
	typo := strings.Replace(sourceStream, "kind: Rollout", "kind: Rolout", 1)
	_, err := ReadSource(Stdin, strings.NewReader(typo))
	var errs Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), `kind: must be Rollout, not "Rolout"`) {
		t.Errorf("misspelled kind: %v", err)
	}
	if _, err := ParseFile("f.yaml", []byte(sourceStream)); err == nil || !strings.Contains(err.Error(), "f.yaml:1:1: apiVersion") {
		t.Errorf("ParseFile took a Service: %v", err)
	}
}
