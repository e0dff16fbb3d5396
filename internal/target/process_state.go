package target

import (
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
}

// stateFile keeps the list of live processes on disk, rewritten whole
// (write, then rename) on every change so a crash leaves either list.
type stateFile struct {
	path  string
	clock rollout.Clock // bounds the wait for leftovers to exit
	log   *slog.Logger

	mu      sync.Mutex
	entries map[int]stateEntry
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
	s.writeLocked()
}

// remove forgets a process that has exited and been reaped.
func (s *stateFile) remove(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, pid)
	s.writeLocked()
}

func (s *stateFile) writeLocked() {
	list := slices.SortedFunc(maps.Values(s.entries), func(a, b stateEntry) int { return a.PID - b.PID })
	b, err := json.Marshal(list)
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
}

// stopLeftovers stops the processes a previous run of pipit left behind,
// then records an empty list.
//
// pipit restarts its processes cleanly instead of adopting them: their
// output went to pipes that died with the previous daemon (a write would
// kill them with SIGPIPE), and a process that is not pipit's child cannot
// be waited for, so its exits would go unseen. A leftover is stopped only
// if it is still the process pipit started: same pid and same start time.
// If that process has exited but others of its process group live on (its
// children), the group is stopped too: a process group id cannot be given
// to a new process while the group has members.
func (s *stateFile) stopLeftovers(ctx context.Context) error {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.path, err)
	}
	var list []stateEntry
	if err := json.Unmarshal(b, &list); err != nil {
		s.log.Warn("ignoring an unreadable process list", "file", s.path, "err", err)
		list = nil
	}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeLocked()
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
