package kubescale

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ). Linux
// fixes it at 100 on every architecture Go supports.
const userHZ = 100

// procStats is what /proc says about a process.
type procStats struct {
	// CPU is the user plus system time the process has used so far.
	CPU time.Duration
	// RSS is the resident memory now, HWM the peak resident memory of the
	// process' life (VmRSS and VmHWM), in bytes.
	RSS, HWM int64
}

// readProc reads a live process' CPU time and memory.
func readProc(pid int) (procStats, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStats{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStats{}, err
	}
	cpu, err := parseStat(stat)
	if err != nil {
		return procStats{}, err
	}
	rss, hwm, err := parseStatus(status)
	if err != nil {
		return procStats{}, err
	}
	return procStats{CPU: cpu, RSS: rss, HWM: hwm}, nil
}

// parseStat returns utime + stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted from its last ')'.
func parseStat(b []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc stat: no command name in %q", b)
	}
	// After the name: field 3 (state) onwards; utime and stime are
	// fields 14 and 15, at indexes 11 and 12 here.
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// parseStatus returns VmRSS and VmHWM, in bytes, from the text of
// /proc/PID/status.
func parseStatus(b []byte) (rss, hwm int64, err error) {
	found := 0
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc status: %s: unexpected %q", key, strings.TrimSpace(val))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = kb * 1024
		} else {
			hwm = kb * 1024
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/proc status: VmRSS or VmHWM missing")
	}
	return rss, hwm, nil
}
