package standalone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/pipit-dev/pipit/internal/buildinfo"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/runtime/standalone/handover"
	"github.com/pipit-dev/pipit/internal/store"
)

// Inheritance is what a daemon starts from instead of opening it itself:
// listening sockets, and the output pipes of the processes it adopts.
// A hand-over fills it in, and so does a daemon that takes over again
// from itself after a hand-over failed.
type Inheritance struct {
	// Sockets are served by the listen addresses they match.
	Sockets []InheritedSocket
	// Pipes are the output pipes of running processes, by rollout and
	// then as the process target's Detach named them: the processes whose
	// pipe is here are adopted, the others restarted.
	Pipes map[string]map[string]*os.File
}

// close releases what no daemon took.
func (in *Inheritance) close() {
	if in == nil {
		return
	}
	closeSockets(in.Sockets)
	in.closePipes()
}

// closePipes closes the pipes no rollout took: those of rollouts no
// longer in the files, whose processes are then left alone.
func (in *Inheritance) closePipes() {
	if in == nil {
		return
	}
	for _, pipes := range in.Pipes {
		for _, f := range pipes {
			f.Close()
		}
	}
	in.Pipes = nil
}

// takePipes hands the pipes of a rollout's processes over to its process
// target, which owns them from then on.
func (in *Inheritance) takePipes(rollout string) map[string]*os.File {
	if in == nil {
		return nil
	}
	pipes := in.Pipes[rollout]
	delete(in.Pipes, rollout)
	return pipes
}

// Names of the descriptors of a hand-over: a proxy or control API socket
// by the address its daemon was told to listen on, a process's output
// pipe by its rollout and the name Detach gave it ("pipe web/pid:42").
const (
	socketPrefix = "socket "
	pipePrefix   = "pipe "
)

// handoverMeta is what the old daemon tells the new one besides the
// descriptors: who it is, for the logs.
type handoverMeta struct {
	PID     int    `json:"pid"`
	Version string `json:"version"`
}

// HandOver is the outcome of a hand-over this daemon was asked for. By
// then the daemon has stopped deciding, let go of its processes and
// released the state; its proxies still serve, until Drain.
type HandOver struct {
	// To is the pid of the daemon that asked.
	To int
	// Err is why the hand-over failed, nil when the other daemon serves
	// now and this one should Drain and exit.
	Err error
	// Inheritance is what this process must start a daemon from again
	// when the hand-over failed after the daemon stopped deciding: its
	// own sockets and processes' pipes.
	Inheritance *Inheritance
}

// HandOvers delivers the outcome of a hand-over; a daemon hands over at
// most once.
func (d *Daemon) HandOvers() <-chan HandOver { return d.handovers }

// handoverAttempt bounds one hand-over from the request until the new
// daemon serves: it stops the control API (up to submitTimeout for the
// calls in flight) and the rollout loops, and the new daemon adopts the
// processes and waits for the stable versions (up to startupHold).
const handoverAttempt = 2 * (submitTimeout + startupHold)

// listenForHandOvers answers the daemons that ask to take over, until
// one hand-over went far enough to stop this daemon deciding.
func (d *Daemon) listenForHandOvers(ctx context.Context) {
	for {
		out, err := d.handoverLn.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				d.log.Error("hand-over listener stopped", "err", err)
			}
			return
		}
		hello := out.Hello()
		d.log.Info("hand-over requested", "pid", hello.PID, "version", hello.Version)
		attempt, cancel := context.WithTimeout(context.WithoutCancel(ctx), handoverAttempt)
		res := d.handOver(attempt, out)
		cancel()
		if res.Err != nil && res.Inheritance == nil {
			out.Close()
			d.log.Error("hand-over refused; serving on", "pid", hello.PID, "err", res.Err)
			continue
		}
		if res.Err == nil {
			d.handedTo = out // told once this daemon drained
		} else {
			out.Close()
		}
		res.To = hello.PID
		d.handoverLn.Close()
		d.handovers <- res
		return
	}
}

// handOver stops deciding, lets go of everything a new daemon takes over,
// passes it on and waits until the new daemon serves. The proxies serve
// throughout; on failure the Inheritance lets this process start again.
func (d *Daemon) handOver(ctx context.Context, out *handover.Outgoing) HandOver {
	// No reload from here on: the files are the new daemon's business.
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	sockets, files, err := d.socketFiles()
	if err != nil {
		return HandOver{Err: err} // nothing stopped: this daemon serves on
	}
	d.handingOver = true
	inh := &Inheritance{Sockets: sockets, Pipes: map[string]map[string]*os.File{}}
	crashPoint("old", "hello")
	if err := d.stopDeciding(ctx); err != nil {
		d.log.Warn("stopping the control API", "err", err)
	}
	crashPoint("old", "stopped")
	for _, name := range d.names {
		if p := d.rollouts[name].process; p != nil {
			pipes, err := p.Detach(ctx)
			if err != nil {
				d.log.Error("letting go of the processes", "rollout", name, "err", err)
			}
			inh.Pipes[name] = pipes
			for k, f := range pipes {
				files = append(files, handover.NamedFile{Name: pipePrefix + name + "/" + k, File: f})
			}
		}
	}
	if err := d.db.Close(); err != nil {
		d.log.Warn("closing the state", "err", err)
	}
	crashPoint("old", "released")
	meta, _ := json.Marshal(handoverMeta{PID: os.Getpid(), Version: buildinfo.Version()})
	if err := out.SendFiles(ctx, files, meta); err != nil {
		return HandOver{Err: err, Inheritance: inh}
	}
	crashPoint("old", "sent")
	if err := out.Released(ctx); err != nil {
		return HandOver{Err: err, Inheritance: inh}
	}
	if err := out.AwaitServing(ctx); err != nil {
		return HandOver{Err: err, Inheritance: inh}
	}
	crashPoint("old", "serving")
	inh.close() // the new daemon has its own copies
	return HandOver{}
}

// namedListener is a listening socket of the daemon by the address it was
// told to listen on.
type namedListener struct {
	name string
	ln   net.Listener
}

// sockets are the daemon's listening sockets: the proxies', the
// control API's and the OFREP listener's.
func (d *Daemon) sockets() []namedListener {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := []namedListener{{d.apiName, d.apiLn}}
	for _, f := range d.frontends {
		out = append(out, namedListener{f.addr, f.ln})
	}
	return append(out, d.ofrepSocket()...)
}

// socketFiles duplicates every listening socket of the daemon: as
// sockets a daemon of this process can serve again, and as files to pass.
func (d *Daemon) socketFiles() ([]InheritedSocket, []handover.NamedFile, error) {
	var socks []InheritedSocket
	var files []handover.NamedFile
	for _, nl := range d.sockets() {
		name := nl.name
		f, err := nl.ln.(*net.TCPListener).File()
		if err != nil {
			closeSockets(socks)
			return nil, nil, fmt.Errorf("duplicating the socket of %s: %w", name, err)
		}
		dup, err := net.FileListener(f)
		if err != nil {
			f.Close()
			closeSockets(socks)
			return nil, nil, fmt.Errorf("duplicating the socket of %s: %w", name, err)
		}
		socks = append(socks, InheritedSocket{Name: name, Listener: dup})
		files = append(files, handover.NamedFile{Name: socketPrefix + name, File: f})
	}
	return socks, files, nil
}

// takeOver asks the daemon that holds the state directory to hand over,
// and returns what it passed once it released the state. It returns
// nil, nil when no daemon listens for hand-overs (the caller reports the
// lock), and what it received when the old daemon died half-way but
// after passing it: the lock is free then.
func takeOver(ctx context.Context, cfg Config) (*Inheritance, *handover.Incoming, error) {
	ctx, cancel := context.WithTimeout(ctx, handoverAttempt)
	defer cancel()
	in, err := handover.Dial(ctx, cfg.StateDir, handover.Hello{PID: os.Getpid(), Version: buildinfo.Version()})
	if errors.Is(err, handover.ErrNoListener) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("asking the running daemon to hand over: %w", err)
	}
	crashPoint("new", "dialed")
	files, meta, err := in.Files(ctx)
	if err != nil {
		in.Close()
		return nil, nil, fmt.Errorf("receiving the running daemon's sockets: %w", err)
	}
	crashPoint("new", "files")
	inh, err := inheritanceOf(files)
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	var m handoverMeta
	_ = json.Unmarshal(meta, &m)
	cfg.Logger.Info("taking over", "from", m.PID, "version", m.Version, "sockets", len(inh.Sockets), "rolloutsWithProcesses", len(inh.Pipes))
	if err := in.AwaitReleased(ctx); err != nil {
		// The old daemon died after passing everything: its lock went
		// with it, and what it passed still serves.
		cfg.Logger.Warn("the running daemon did not confirm the hand-over", "err", err)
	}
	crashPoint("new", "released")
	return inh, in, nil
}

// inheritanceOf sorts the passed descriptors by their names.
func inheritanceOf(files []handover.NamedFile) (*Inheritance, error) {
	inh := &Inheritance{Pipes: map[string]map[string]*os.File{}}
	for _, nf := range files {
		switch {
		case strings.HasPrefix(nf.Name, socketPrefix):
			ln, err := net.FileListener(nf.File)
			nf.File.Close()
			if err != nil {
				inh.close()
				return nil, fmt.Errorf("socket %s: %w", strings.TrimPrefix(nf.Name, socketPrefix), err)
			}
			inh.Sockets = append(inh.Sockets, InheritedSocket{Name: strings.TrimPrefix(nf.Name, socketPrefix), Listener: ln})
		case strings.HasPrefix(nf.Name, pipePrefix):
			rollout, key, _ := strings.Cut(strings.TrimPrefix(nf.Name, pipePrefix), "/")
			if inh.Pipes[rollout] == nil {
				inh.Pipes[rollout] = map[string]*os.File{}
			}
			inh.Pipes[rollout][key] = nf.File
		default:
			nf.File.Close()
		}
	}
	return inh, nil
}

// openState opens the state directory. When another daemon holds it and
// listens for hand-overs, it asks that daemon to hand over, adds what it
// passed to cfg.Inherit, and returns the hand-over to confirm once this
// daemon serves.
func openState(ctx context.Context, cfg *Config) (*store.Store, *handover.Incoming, error) {
	opts := store.Options{Clock: cfg.Clock, Log: cfg.Logger}
	db, err := store.Open(ctx, cfg.StateDir, opts)
	if !errors.Is(err, store.ErrLocked) {
		return db, nil, err
	}
	inh, in, herr := takeOver(ctx, *cfg)
	switch {
	case herr != nil:
		// The running daemon may have died half-way, its lock with it:
		// then this one starts as after a crash.
		db, err := openReleased(ctx, *cfg, opts)
		if err != nil {
			return nil, nil, herr
		}
		cfg.Logger.Warn("the running daemon went away during the hand-over; starting afresh", "err", herr)
		return db, nil, nil
	case inh == nil:
		return nil, nil, err
	}
	if cfg.Inherit != nil {
		inh.Sockets = append(inh.Sockets, cfg.Inherit.Sockets...)
	}
	cfg.Inherit = inh
	if db, err = openReleased(ctx, *cfg, opts); err != nil {
		in.Close()
		return nil, nil, err
	}
	return db, in, nil
}

// Retries of openReleased.
const (
	releaseAttempts = 50
	releaseRetry    = 100 * time.Millisecond
)

// openReleased opens the state a daemon just released. The lock is free
// once it said so; a few retries cover a daemon that died and whose lock
// the kernel drops a moment after its socket.
func openReleased(ctx context.Context, cfg Config, opts store.Options) (*store.Store, error) {
	var err error
	for range releaseAttempts {
		var db *store.Store
		if db, err = store.Open(ctx, cfg.StateDir, opts); !errors.Is(err, store.ErrLocked) {
			return db, err
		}
		if err := rollout.Sleep(ctx, cfg.Clock, releaseRetry); err != nil {
			return nil, err
		}
	}
	return nil, err
}

// handedDrainWait bounds the wait for the daemon that handed over to drain:
// its own drain takes up to 15 s.
const handedDrainWait = 30 * time.Second

// confirmTakeOver tells the daemon that handed over that this one serves,
// once every proxy listener accepts, then releases the held process
// stops once that daemon has drained.
func (d *Daemon) confirmTakeOver(ctx context.Context, in *handover.Incoming) {
	d.accepting.Wait()
	crashPoint("new", "started")
	if err := in.Serving(ctx); err != nil {
		// It died after passing everything; nothing is lost.
		d.log.Warn("the daemon that handed over did not hear that this one serves", "err", err)
		in.Close()
		close(d.stopsHeld)
		return
	}
	d.log.Info("took over")
	d.serving.Go(func() {
		defer close(d.stopsHeld)
		defer in.Close()
		drained, cancel := context.WithTimeout(d.serveCtx, handedDrainWait)
		defer cancel()
		if err := in.AwaitDrained(drained); err != nil {
			d.log.Warn("the daemon that handed over did not say it drained", "err", err)
		}
	})
}

// crashEnv names a stage at which a daemon kills itself, for the tests
// of a hand-over cut short: "old:STAGE" or "new:STAGE".
const crashEnv = "PIPIT_TEST_HANDOVER_CRASH"

// crashPoint kills this process with SIGKILL when crashEnv names side and
// stage: a test's stand-in for a daemon dying half-way.
func crashPoint(side, stage string) {
	if os.Getenv(crashEnv) == side+":"+stage {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
