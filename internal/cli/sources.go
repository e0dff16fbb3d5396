package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/pipit-dev/pipit/internal/spec"
)

// readResult is one file as readRolloutFiles read it: its source, or why
// it could not be read or is invalid.
type readResult struct {
	src     *spec.Source
	problem string
}

// readRolloutFiles reads each named file, or standard input for "-", with
// spec.ReadSource: the one reader of `pipit validate` and `pipit lint`.
// It writes a note to notes for every document of another API it skipped,
// such as the Deployments and Services of `kustomize build`. The results
// are in the order of files.
func readRolloutFiles(files []string, stdin io.Reader, notes io.Writer) []readResult {
	out := make([]readResult, len(files))
	for i, file := range files {
		src, err := spec.ReadSource(file, stdin)
		if err != nil {
			out[i].problem = describeLoadError(file, err)
			continue
		}
		for _, o := range src.Others {
			fmt.Fprintf(notes, "note: skipping %s: not a pipit rollout\n", o)
		}
		out[i].src = src
	}
	expandTemplates(out)
	return out
}

// expandTemplates resolves the templateRefs of the rollouts read from the
// templates read, all files together as pipit up -f reads them; a file
// whose rollouts reference a template wrongly becomes invalid.
func expandTemplates(results []readResult) {
	var srcs []*spec.Source
	for _, res := range results {
		if res.src != nil {
			srcs = append(srcs, res.src)
		}
	}
	problems := map[string][]string{}
	for _, e := range spec.ExpandSources(srcs) {
		problems[e.File] = append(problems[e.File], e.Error())
	}
	for i, res := range results {
		if res.src != nil && len(problems[res.src.Name]) > 0 {
			results[i] = readResult{problem: strings.Join(problems[res.src.Name], "\n")}
		}
	}
}
