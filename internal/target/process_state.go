package target

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// How long leftovers of a previous run get to exit on SIGTERM, and then
// on SIGKILL, before pipit gives up on them.
const (
	leftoverGrace    = 3 * time.Second
	leftoverKillWait = 2 * time.Second
	leftoverPoll     = 20 * time.Millisecond
)

// stateFileName is the file, in the process target's directory, that lists
// the processes pipit started and that may still run.
const stateFileName = "processes.json"

// stateEntry identifies one started process. The pid alone could be
// reused by an unrelated process after pipit's exits; the start time (in
// clock ticks since boot) tells them apart.
type stateEntry struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"startTicks"`
	Version    string `json:"version"`
	// Detach records the rest, for the daemon that adopts the process.
	Replica int  `json:"replica,omitempty"`
	Port    int  `json:"port,omitempty"`
	Ready   bool `json:"ready,omitempty"`
}

// stateRecord is the content of the state file. Versions of pipit before
// the hand-over wrote the process list alone, as a JSON array.
type stateRecord struct {
	Processes []stateEntry    `json:"processes"`
	Handover  *handoverRecord `json:"handover,omitempty"`
}

// handoverRecord is what a detached Process wanted, so that the Process
// adopting its processes carries on where it stopped.
type handoverRecord struct {
	// Versions are the versions that ran, for their full references.
	Versions   []v1alpha1.VersionRef `json:"versions"`
	StableWant string                `json:"stableWant,omitempty"`
	CanaryWant string                `json:"canaryWant,omitempty"`
	// Routed is the version the proxy routed each role to.
	Routed map[string]string `json:"routed,omitempty"`
	// Warm is the previous stable kept warm for Undo, until WarmUntil.
	Warm      *v1alpha1.VersionRef `json:"warm,omitempty"`
	WarmUntil time.Time            `json:"warmUntil,omitzero"`
}

// stateFile keeps the list of live processes on disk, rewritten whole
// (write, then rename) on every change so a crash leaves either list.
type stateFile struct {
	path  string
	clock rollout.Clock // bounds the wait for leftovers to exit
	log   *slog.Logger

	mu       sync.Mutex
	entries  map[int]stateEntry
	handover *handoverRecord // set by Detach only
}

func newStateFile(dir string, clock rollout.Clock, log *slog.Logger) *stateFile {
	return &stateFile{path: filepath.Join(dir, stateFileName), clock: clock, log: log, entries: map[int]stateEntry{}}
}

// add records a process just started. If it is already gone there is
// nothing to record.
func (s *stateFile) add(pid int, version string) {
	st, err := readProcStat(pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[pid] = stateEntry{PID: pid, StartTicks: st.startTicks, Version: version}
	_ = s.writeLocked()
}

// handOver records what the adopting daemon needs: the details of the
// processes left running (their start times are known already) and what
// the Process wanted.
func (s *stateFile) handOver(left []stateEntry, h *handoverRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range left {
		e.StartTicks = s.entries[e.PID].StartTicks
		s.entries[e.PID] = e
	}
	s.handover = h
	return s.writeLocked()
}

// reset records exactly the processes of kept, the adopted ones, with
// the record of the hand-over they came with. The record stays until the
// next Detach replaces it: should the adopting daemon die before the
// daemon that handed over heard that it serves, that one adopts its
// processes back and needs the roles they had.
func (s *stateFile) reset(kept []stateEntry, h *handoverRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.entries)
	for _, e := range kept {
		s.entries[e.PID] = e
	}
	s.handover = h
	_ = s.writeLocked()
}

// remove forgets a process that has exited and been reaped.
func (s *stateFile) remove(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, pid)
	_ = s.writeLocked()
}

func (s *stateFile) writeLocked() error {
	list := slices.SortedFunc(maps.Values(s.entries), func(a, b stateEntry) int { return a.PID - b.PID })
	b, err := json.Marshal(stateRecord{Processes: list, Handover: s.handover})
	if err == nil {
		tmp := s.path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, s.path)
		}
	}
	if err != nil {
		// The processes run regardless; only a crash of the daemon could
		// leave them behind.
		s.log.Warn("cannot record the running processes", "file", s.path, "err", err)
	}
	return err
}

// stopLeftovers stops the processes a previous run of pipit left behind,
// then records an empty list.
//
// After a crash pipit restarts its processes cleanly instead of adopting
// them: their output went to pipes that died with the previous daemon (a
// write would kill them with SIGPIPE) and nothing says which replica of
// which version each one was. A hand-over passes the pipes and records the
// rest (see Process.Detach). A leftover is stopped only if it is still the
// process pipit started: same pid and same start time.
func (s *stateFile) stopLeftovers(ctx context.Context) error {
	rec, err := s.read()
	if err != nil {
		return err
	}
	if err := s.stop(ctx, rec.Processes); err != nil {
		return err
	}
	s.reset(nil, nil)
	return nil
}

// read returns what the file records; nothing if there is no file, or an
// unreadable one.
func (s *stateFile) read() (stateRecord, error) {
	var rec stateRecord
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("reading %s: %w", s.path, err)
	}
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		err = json.Unmarshal(b, &rec.Processes)
	} else {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		s.log.Warn("ignoring an unreadable process list", "file", s.path, "err", err)
		return stateRecord{}, nil
	}
	return rec, nil
}

// stop stops the recorded processes that are still ours. If one has
// exited but others of its process group live on (its children), the
// group is stopped too: a process group id cannot be given to a new
// process while the group has members.
func (s *stateFile) stop(ctx context.Context, list []stateEntry) error {
	var groups []int
	for _, e := range list {
		if s.ours(e) && len(groupMembers(e.PID)) > 0 {
			s.log.Info("stopping a process left by a previous run", "pid", e.PID, "version", e.Version)
			groups = append(groups, e.PID)
		}
	}
	if left := terminateGroups(ctx, s.clock, groups); len(left) > 0 {
		return fmt.Errorf("processes of a previous run survived SIGKILL: %v", left)
	}
	return nil
}

// ours reports whether e still names the process pipit started, or a
// group it led: another live process with that pid is a stranger.
func (s *stateFile) ours(e stateEntry) bool {
	if e.PID <= 1 {
		return false
	}
	st, err := readProcStat(e.PID)
	if err != nil || !st.alive() {
		return true // the leader is gone; members of its group may remain
	}
	return st.startTicks == e.StartTicks
}

// stillRunning reports whether e names the process pipit started and it still
// runs.
func stillRunning(e stateEntry) bool {
	st, err := readProcStat(e.PID)
	return e.PID > 1 && err == nil && st.alive() && st.startTicks == e.StartTicks
}

// terminateGroups sends SIGTERM to each group, waits for them to empty,
// then SIGKILLs what is left. It returns the groups that still have
// members at the end. It waits on clock.
func terminateGroups(ctx context.Context, clock rollout.Clock, groups []int) []int {
	if len(groups) == 0 {
		return nil
	}
	for _, g := range groups {
		_ = signalGroup(g, syscall.SIGTERM)
	}
	left := waitGroupsEmpty(ctx, clock, groups, leftoverGrace)
	for _, g := range left {
		_ = signalGroup(g, syscall.SIGKILL)
	}
	return waitGroupsEmpty(context.WithoutCancel(ctx), clock, left, leftoverKillWait)
}

// waitGroupsEmpty polls the groups on clock until they are empty or limit
// passed, and returns those that are not.
func waitGroupsEmpty(ctx context.Context, clock rollout.Clock, groups []int, limit time.Duration) []int {
	deadline := clock.Now().Add(limit)
	for {
		var left []int
		for _, g := range groups {
			if len(groupMembers(g)) > 0 {
				left = append(left, g)
			}
		}
		if len(left) == 0 || clock.Now().After(deadline) || !sleepCtx(ctx, clock, leftoverPoll) {
			return left
		}
		groups = left
	}
}
