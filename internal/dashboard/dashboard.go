// Package dashboard holds the web dashboard's files: its page, script and
// style sheet and the vendored charting library (uPlot, MIT), embedded so
// that the binary serves them without internet access. The control API
// serves them under /ui/.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed assets
var assets embed.FS

// Files is the dashboard's file tree, index.html at its root.
func Files() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "assets" is valid.
		panic(err)
	}
	return sub
}
