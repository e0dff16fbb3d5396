package buildinfo

import (
	"runtime/debug"
	"testing"
	"time"
)

func TestFromBuildReadsVCSSettings(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	got := fromBuild(bi, "", "", "")
	want := Info{Version: "(devel)", Commit: "0123abcd", CommitTime: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Modified: true, GoVersion: "go1.26.0"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if s := got.String(); s != "(devel) (commit 0123abcd with changes not committed, committed 2026-12-01T10:00:00Z, built with go1.26.0)" {
		t.Fatalf("String: %q", s)
	}
	// What the toolchain recorded wins over the link-time commit.
	if got := fromBuild(bi, "v1.4.0", "ffff", "2020-01-01T00:00:00Z"); got.Version != "v1.4.0" || got.Commit != "0123abcd" ||
		!got.CommitTime.Equal(want.CommitTime) {
		t.Fatalf("with -ldflags: %+v", got)
	}
}

func TestFromBuildFallsBackToLinkTimeValues(t *testing.T) {
	got := fromBuild(nil, "v1.4.0", "abc123", "2026-11-30T08:00:00Z")
	want := Info{Version: "v1.4.0", Commit: "abc123", CommitTime: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := fromBuild(nil, "", "", "not a time"); got != (Info{Version: "(devel)"}) || got.String() != "(devel)" {
		t.Fatalf("nothing known: %+v %q", got, got.String())
	}
}

func TestReadInATest(t *testing.T) {
	if v := Version(); v == "" || v != Read().Version {
		t.Fatalf("Version %q, Read %+v", v, Read())
	}
}
