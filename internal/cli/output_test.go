package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// readVerbs are the verbs that only read, with arguments that make each
// print something; every one takes -o json and -o yaml.
func readVerbs(t *testing.T, stateDir string) [][]string {
	dir := t.TempDir()
	stable := writeFile(t, dir, "stable.csv", lines("latency_ms", 30, 0))
	canary := writeFile(t, dir, "canary.csv", lines("latency_ms", 30, 12))
	return [][]string{
		{"status", "--state-dir", stateDir},
		{"status", "web", "--state-dir", stateDir},
		{"get", "web", "--state-dir", stateDir},
		{"history", "web", "--state-dir", stateDir},
		{"samples", "web", "--state-dir", stateDir},
		{"version"},
		{"judge", "--stable", stable, "--canary", canary},
		{"lint", "../lint/testdata/first-step-too-big.yaml"},
		{"validate", "../../examples/canary.yaml"},
	}
}

// TestReadVerbsPrintJSONAndYAML: every read verb prints one document in
// either format, and the YAML holds the same fields and values as the JSON.
func TestReadVerbsPrintJSONAndYAML(t *testing.T) {
	f := newFakeBackend()
	f.events["web"] = historyEvents()
	f.samples["web"] = webSamples()
	dir := startDaemon(t, f)
	for _, args := range readVerbs(t, dir) {
		t.Run(strings.Join(args[:1], " "), func(t *testing.T) {
			_, jsonOut, errOut := run(t, append(args, "-o", "json")...)
			var fromJSON any
			if err := json.Unmarshal([]byte(jsonOut), &fromJSON); err != nil || fromJSON == nil {
				t.Fatalf("-o json does not parse (%v):\n%s%s", err, jsonOut, errOut)
			}
			_, yamlOut, errOut := run(t, append(args, "-o", "yaml")...)
			var fromYAML any
			if err := yaml.Unmarshal([]byte(yamlOut), &fromYAML); err != nil || fromYAML == nil {
				t.Fatalf("-o yaml does not parse (%v):\n%s%s", err, yamlOut, errOut)
			}
			// Through JSON, so that YAML's integers compare as JSON's numbers.
			data, err := json.Marshal(fromYAML)
			if err != nil {
				t.Fatal(err)
			}
			var back any
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, fromJSON) {
				t.Fatalf("YAML and JSON differ:\n%s\n%s", yamlOut, jsonOut)
			}
			if code, _, errOut := run(t, append(args, "-o", "xml")...); code != ExitBadInput || !strings.Contains(errOut, "--output") {
				t.Fatalf("-o xml: exit %d, %q", code, errOut)
			}
		})
	}
}
