// Package buildinfo says which pipit this binary is.
package buildinfo

import (
	"runtime/debug"
	"strings"
	"time"
)

// Set at link time by release builds, which may be built without the
// version control information Go records (from a source archive, say):
//
//	go build -ldflags "-X github.com/pipit-dev/pipit/internal/buildinfo.version=v1.4.0
//	  -X github.com/pipit-dev/pipit/internal/buildinfo.commit=abc123
//	  -X github.com/pipit-dev/pipit/internal/buildinfo.commitTime=2026-12-01T10:00:00Z"
var version, commit, commitTime string

// devel is the version of a build from a working tree.
const devel = "(devel)"

// Info is what the binary knows of the source it was built from.
type Info struct {
	// Version is the module version, or "(devel)" for a build from a
	// working tree.
	Version string `json:"version"`
	// Commit is the revision built, if known.
	Commit string `json:"commit,omitempty"`
	// CommitTime is when that revision was committed, if known.
	CommitTime time.Time `json:"commitTime,omitzero"`
	// Modified says the working tree had changes not committed.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion,omitempty"`
}

// Read returns what the Go toolchain recorded in the binary (its vcs.*
// settings), with the link-time variables filling what it did not record.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuild(bi, version, commit, commitTime)
}

// fromBuild merges the build information bi, which may be nil, with the
// link-time values, which win for the version and fill in the rest.
func fromBuild(bi *debug.BuildInfo, ldVersion, ldCommit, ldTime string) Info {
	info := Info{Version: devel}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.CommitTime, _ = time.Parse(time.RFC3339, s.Value)
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		info.Version = ldVersion
	}
	if info.Commit == "" {
		info.Commit = ldCommit
	}
	if t, err := time.Parse(time.RFC3339, ldTime); err == nil && info.CommitTime.IsZero() {
		info.CommitTime = t
	}
	return info
}

// Version is the module version the binary was built at, or "(devel)"
// for a build from a working tree.
func Version() string { return Read().Version }

// String writes the information on one line: "v1.4.0 (commit abc123,
// 2026-12-01T10:00:00Z, go1.26.0)".
func (i Info) String() string {
	s := i.Version
	var parts []string
	if i.Commit != "" {
		c := "commit " + i.Commit
		if i.Modified {
			c += " with changes not committed"
		}
		parts = append(parts, c)
	}
	if !i.CommitTime.IsZero() {
		parts = append(parts, "committed "+i.CommitTime.UTC().Format(time.RFC3339))
	}
	if i.GoVersion != "" {
		parts = append(parts, "built with "+i.GoVersion)
	}
	if len(parts) == 0 {
		return s
	}
	return s + " (" + strings.Join(parts, ", ") + ")"
}
