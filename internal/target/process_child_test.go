package target

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// The test binary doubles as the processes the tests run: with one of
// these variables set, TestMain plays that part instead of running tests.
const (
	childEnv   = "PIPIT_TEST_CHILD"   // a small HTTP server, see runChild
	sleeperEnv = "PIPIT_TEST_SLEEPER" // a process that only waits
	daemonEnv  = "PIPIT_TEST_DAEMON"  // a daemon running v1 in the given dir
	// handoverEnv plays a daemon running v1 in the given dir that hands
	// its processes over on the socket it gets as fd 3, then exits.
	handoverEnv = "PIPIT_TEST_HANDOVER"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(sleeperEnv) != "":
		// First: a child's sleeper inherits the child's variables, and
		// would otherwise start a sleeper of its own, and so on.
		time.Sleep(time.Hour)
	case os.Getenv(childEnv) != "":
		runChild()
	case os.Getenv(daemonEnv) != "":
		runDaemon(os.Getenv(daemonEnv))
	case os.Getenv(handoverEnv) != "":
		runHandover(os.Getenv(handoverEnv))
	default:
		// Race-enabled binaries sleep a second before exiting; the
		// children (this binary) need not.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
		os.Exit(m.Run())
	}
}

// runChild serves / (answering CHILD_VERSION) and /health and /live on
// -port. Its behaviour is steered by the environment:
//
//	CHILD_EXIT_AFTER=d          exit with status 1 after d (0: at once)
//	CHILD_READY_FILE=path       /health fails while path does not exist
//	CHILD_LIVE_FAIL_ONCE=path   if path does not exist, create it and fail /live
//	CHILD_IGNORE_TERM=1         ignore SIGTERM
//	CHILD_GRANDCHILD_PIDFILE=p  start a sleeper child and write its pid to p
//	CHILD_START_LOG=path        append the start time to path
//	CHILD_BURN=d                spin the CPU for d after starting
func runChild() {
	fs := flag.NewFlagSet("child", flag.ExitOnError)
	port := fs.Int("port", 0, "port to listen on")
	_ = fs.Parse(os.Args[1:])
	if p := os.Getenv("CHILD_START_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err == nil {
			_, _ = fmt.Fprintln(f, time.Now().UnixNano())
			_ = f.Close()
		}
	}
	if d := os.Getenv("CHILD_EXIT_AFTER"); d != "" {
		dur, _ := time.ParseDuration(d)
		time.AfterFunc(dur, func() { fmt.Println("crashing on purpose"); os.Exit(1) })
	}
	if d, err := time.ParseDuration(os.Getenv("CHILD_BURN")); err == nil {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
	}
	if p := os.Getenv("CHILD_GRANDCHILD_PIDFILE"); p != "" {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), sleeperEnv+"=1")
		if err := cmd.Start(); err == nil {
			_ = os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
		}
	}
	failLive := false
	if p := os.Getenv("CHILD_LIVE_FAIL_ONCE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			_ = os.WriteFile(p, nil, 0o600)
			failLive = true
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, os.Getenv("CHILD_VERSION")) })
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if p := os.Getenv("CHILD_READY_FILE"); p != "" {
			if _, err := os.Stat(p); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) {
		if failLive {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	l, err := net.Listen("tcp", loopback(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("version %s listening on port %d\n", os.Getenv("CHILD_VERSION"), *port)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	drained := make(chan struct{})
	go func() {
		for range term {
			if os.Getenv("CHILD_IGNORE_TERM") != "" {
				fmt.Fprintln(os.Stderr, "ignoring SIGTERM")
				continue
			}
			fmt.Fprintln(os.Stderr, "got SIGTERM, shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			close(drained)
			return
		}
	}()
	if err := srv.Serve(l); errors.Is(err, http.ErrServerClosed) {
		<-drained
	}
}

// daemonSpec is the spec of v1 in the daemons the test binary plays.
func daemonSpec(dir string) v1alpha1.ProcessSpec {
	exe, _ := os.Executable()
	return v1alpha1.ProcessSpec{
		Command: exe, Args: []string{"-port", "{{ .Port }}"}, Replicas: 2,
		Env: map[string]string{childEnv: "1", "CHILD_VERSION": "{{ .Version }}", "CHILD_GRANDCHILD_PIDFILE": dir + "/grandchild-{{ .Port }}"},
	}
}

// runDaemon plays a pipit daemon that is killed -9: it runs v1 in dir,
// prints the replicas' pids as JSON and waits to be killed.
func runDaemon(dir string) {
	p := daemonTarget(dir)
	b, _ := json.Marshal(readyPIDs(p))
	fmt.Println(string(b))
	time.Sleep(time.Hour)
}

// runHandover plays a daemon handing over: it runs v1 in dir, detaches
// once both replicas are ready, sends the output pipes on fd 3 and exits.
func runHandover(dir string) {
	syscall.CloseOnExec(3) // the replicas must not hold the socket
	p := daemonTarget(dir)
	readyPIDs(p)
	pipes, err := p.Detach(context.Background())
	if err == nil {
		err = sendFiles(3, pipes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// daemonTarget runs v1 in dir as stable, or exits.
func daemonTarget(dir string) *Process {
	spec := daemonSpec(dir)
	p, err := NewProcess(context.Background(), ProcessConfig{
		Dir:       dir,
		Specs:     func(string) (v1alpha1.ProcessSpec, bool) { return spec, true },
		Endpoints: &fakeEndpoints{},
	})
	if err == nil {
		err = p.Promote(context.Background(), v1alpha1.VersionRef{Version: "v1"})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return p
}

// readyPIDs waits until both replicas of v1 are ready and returns their
// pids.
func readyPIDs(p *Process) []int {
	for {
		var pids []int
		for _, r := range p.Replicas("v1") {
			if r.Ready {
				pids = append(pids, r.PID)
			}
		}
		if len(pids) == 2 {
			return pids
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendFiles sends files on the Unix socket sock in one message: their
// names as JSON, their descriptors as SCM_RIGHTS in the same order.
func sendFiles(sock int, files map[string]*os.File) error {
	var names []string
	var fds []int
	for name, f := range files {
		names = append(names, name)
		fds = append(fds, int(f.Fd()))
	}
	b, err := json.Marshal(names)
	if err != nil {
		return err
	}
	return ignoringEINTR(func() error { return unix.Sendmsg(sock, b, unix.UnixRights(fds...), nil, 0) })
}

// ignoringEINTR runs call again while a signal interrupts it: the Go
// runtime's own (preemption, SIGCHLD) interrupt a raw system call.
func ignoringEINTR(call func() error) error {
	for {
		if err := call(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// recvFiles receives what sendFiles sent on sock, waiting at most 10s.
func recvFiles(sock int) (map[string]*os.File, error) {
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
		return nil, err
	}
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(64*4))
	var n, oobn int
	err := ignoringEINTR(func() (err error) {
		n, oobn, _, _, err = unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		return err
	})
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(buf[:n], &names); err != nil {
		return nil, fmt.Errorf("the names sent: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("%d control messages: %v", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != len(names) {
		return nil, fmt.Errorf("%d descriptors for %d names: %v", len(fds), len(names), err)
	}
	files := map[string]*os.File{}
	for i, name := range names {
		files[name] = os.NewFile(uintptr(fds[i]), name)
	}
	return files, nil
}
