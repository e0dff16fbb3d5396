package cli

import (
	"fmt"
	"io"

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
	return out
}
