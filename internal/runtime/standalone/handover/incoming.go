package handover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sync"
	"syscall"
)

// Incoming is a hand-over on the new side. Its methods are the stages, to
// be called in order and not concurrently; Close may be called at any time
// and ends a pending call.
type Incoming struct {
	session
	once sync.Once
}

// Dial asks the daemon running on stateDir to hand over, saying hello,
// and returns once it has accepted. It fails with ErrNoListener when no
// daemon listens, and with ErrRefused when the daemon turns it down, as
// it does while another hand-over is in progress.
func Dial(ctx context.Context, stateDir string, hello Hello) (*Incoming, error) {
	if hello.PID <= 0 {
		return nil, fmt.Errorf("handover: hello: PID %d, want a process id", hello.PID)
	}
	path := SocketPath(stateDir)
	d := net.Dialer{Deadline: deadline(ctx.Deadline())}
	c, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("handover: %s: %w", path, ErrNoListener)
	}
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	in := &Incoming{session: session{w: wire{c: c.(*net.UnixConn)}}}
	if err := in.step(stageHello, func() error { return in.hello(ctx, hello) }); err != nil {
		c.Close()
		return nil, err
	}
	return in, nil
}

// hello says who asks and reads the answer. A refusal is read even when
// saying hello failed: the old side may have refused and closed first.
func (in *Incoming) hello(ctx context.Context, h Hello) error {
	if err := checkPeer(in.w.c); err != nil {
		return err
	}
	werr := in.w.writeFrame(ctx, message{Kind: kindHello, PID: h.PID, Version: h.Version}, nil)
	m, _, err := in.w.readFrame(ctx, kindAccepted, kindRefused)
	switch {
	case err == nil && m.Kind == kindRefused:
		return fmt.Errorf("%w by the running daemon: %s", ErrRefused, m.Reason)
	case werr != nil:
		return werr
	}
	return err
}

// Files receives the descriptors the old side passes, with their names,
// in its order, close-on-exec, and its metadata. The caller owns them; if
// Files fails, none stays open.
func (in *Incoming) Files(ctx context.Context) ([]NamedFile, []byte, error) {
	var files []NamedFile
	var meta []byte
	err := in.step(stageFiles, func() (err error) {
		files, meta, err = receiveFiles(ctx, in.w)
		return err
	})
	return files, meta, err
}

// AwaitReleased waits for the old side to say that it has released the
// state directory's lock.
func (in *Incoming) AwaitReleased(ctx context.Context) error {
	return in.step(stageReleased, func() error {
		_, _, err := in.w.readFrame(ctx, kindReleased)
		return err
	})
}

// Serving tells the old side that this daemon accepts on the sockets now.
func (in *Incoming) Serving(ctx context.Context) error {
	return in.step(stageServing, func() error {
		return in.w.writeFrame(ctx, message{Kind: kindServing}, nil)
	})
}

// AwaitDrained waits until the old side forwards no request any more:
// it has finished those in flight and closed its connections, or it died
// (ErrPeerGone counts as drained). Until then it forwards with the
// routes it had when it handed over, so a version must not be stopped
// before, even if this daemon no longer routes to it.
func (in *Incoming) AwaitDrained(ctx context.Context) error {
	err := in.step(stageDrained, func() error {
		_, _, err := in.w.readFrame(ctx, kindDrained)
		return err
	})
	if errors.Is(err, ErrPeerGone) {
		return nil
	}
	return err
}

// Close ends the hand-over's connection.
func (in *Incoming) Close() error {
	var err error
	in.once.Do(func() { err = in.w.c.Close() })
	return err
}

// receiveFiles reads files frames up to the last one. On error it
// closes every descriptor it received.
func receiveFiles(ctx context.Context, w wire) ([]NamedFile, []byte, error) {
	var got []NamedFile
	seen := map[string]bool{}
	for {
		m, files, err := w.readFrame(ctx, kindFiles)
		for i, f := range files {
			got = append(got, NamedFile{Name: m.Names[i], File: f})
		}
		if err == nil {
			err = checkBatch(m.Names, seen, len(got))
		}
		if err != nil {
			for _, f := range got {
				f.File.Close()
			}
			return nil, nil, err
		}
		if !m.More {
			return got, m.Meta, nil
		}
	}
}

// checkBatch refuses a files frame whose names were in an earlier one, or
// that brings the hand-over over MaxFiles descriptors.
func checkBatch(names []string, seen map[string]bool, total int) error {
	if err := checkNames(names, seen); err != nil {
		return fmt.Errorf("%w: files frame: %v", ErrProtocol, err)
	}
	if total > MaxFiles {
		return fmt.Errorf("%w: files frame: over %d descriptors", ErrProtocol, MaxFiles)
	}
	return nil
}
