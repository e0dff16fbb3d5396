package handover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"
)

// stage is a step of a hand-over, in protocol order.
type stage int

const (
	stageHello stage = iota
	stageFiles
	stageReleased
	stageServing
	stageDrained
	stageDone
)

func (s stage) String() string {
	return [...]string{"hello", "files", "released", "serving", "drained", "done"}[s]
}

// session is one side's end of a hand-over: the connection, the next
// stage, and the first failure, which ends the hand-over.
type session struct {
	w    wire
	next stage
	err  error
}

// step runs op as stage st, if the hand-over is at st, and moves on to
// the following stage when op succeeds. Its first failure is every later
// step's.
func (s *session) step(st stage, op func() error) error {
	if s.err != nil {
		return s.err
	}
	if s.next != st {
		return fmt.Errorf("handover: stage %s out of order: the hand-over is at stage %s", st, s.next)
	}
	if err := op(); err != nil {
		s.err = fmt.Errorf("handover: stage %s: %w", st, err)
		return s.err
	}
	s.next = st + 1
	return nil
}

// wire is a hand-over connection: frames, some with descriptors, each
// read and write bounded by a context.
type wire struct {
	c *net.UnixConn
}

// longAgo is a deadline that has passed: it wakes a blocked read or write.
var longAgo = time.Unix(1, 0)

// bounded runs op with the connection's deadline taken from ctx (or
// DefaultTimeout from now), and moved to the past if ctx ends meanwhile.
func (w wire) bounded(ctx context.Context, op func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.c.SetDeadline(deadline(ctx.Deadline())); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = w.c.SetDeadline(longAgo)
		close(fired)
	})
	err := op()
	if !stop() {
		<-fired
	}
	return connError(ctx, err)
}

// connError says what err, from a read or write under ctx, means for the
// hand-over. The socket's addresses are left out: the old side's is the
// private name it was bound to before it was renamed.
func connError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if op := (*net.OpError)(nil); errors.As(err, &op) {
		err = fmt.Errorf("%s: %w", op.Op, op.Err)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w (%v)", ErrPeerGone, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's deadline can fire a moment before the
		// context's own timer does.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded
		}
		return fmt.Errorf("no answer within %v: %w", DefaultTimeout, err)
	}
	return err
}

// writeFrame sends m with files attached to its first byte.
func (w wire) writeFrame(ctx context.Context, m message, files []*os.File) error {
	frame, err := encodeFrame(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds, err := descriptors(files)
		if err != nil {
			return err
		}
		oob = syscall.UnixRights(fds...)
	}
	err = w.bounded(ctx, func() error {
		n, _, err := w.c.WriteMsgUnix(frame, oob, nil)
		if err == nil && n < len(frame) {
			// The descriptors went with the first byte; the rest is data.
			_, err = w.c.Write(frame[n:])
		}
		return err
	})
	// The numbers in oob stay valid while files do.
	runtime.KeepAlive(files)
	return err
}

// descriptors are the numbers of files' descriptors. It reads them with
// SyscallConn rather than Fd, which would put each file (and the open
// file description it shares with the sender's own socket) in blocking
// mode.
func descriptors(files []*os.File) ([]int, error) {
	fds := make([]int, len(files))
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("descriptor %d (%s): %w", i, f.Name(), err)
		}
		if err := rc.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return nil, fmt.Errorf("descriptor %d (%s): %w", i, f.Name(), err)
		}
	}
	return fds, nil
}

// readFrame receives the next frame, which must be of one of the kinds
// want, with the descriptors that came with it. On error it closes every
// descriptor it received.
func (w wire) readFrame(ctx context.Context, want ...kind) (message, []*os.File, error) {
	var m message
	var fds []int
	err := w.bounded(ctx, func() error {
		var header [headerSize]byte
		if err := w.readFull(header[:], &fds); err != nil {
			return err
		}
		n, err := frameLength(header[:])
		if err != nil {
			return err
		}
		body := make([]byte, n)
		if err := w.readFull(body, &fds); err != nil {
			return err
		}
		m, err = decodeMessage(body, len(fds))
		return err
	})
	if err == nil && !slices.Contains(want, m.Kind) {
		err = fmt.Errorf("%w: got a %s frame, want %s", ErrProtocol, m.Kind, want[0])
	}
	if err != nil {
		closeDescriptors(fds)
		return message{}, nil, err
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), m.Names[i])
	}
	return m, files, nil
}

// readFull fills buf from the connection, adding the descriptors that
// come with it to fds. It reads no further than buf, so descriptors sent
// with a frame arrive while that frame is read.
func (w wire) readFull(buf []byte, fds *[]int) error {
	oob := make([]byte, syscall.CmsgSpace(batchSize*4))
	for done := 0; done < len(buf); {
		n, oobn, flags, _, err := w.c.ReadMsgUnix(buf[done:], oob)
		got, perr := unixRights(oob[:oobn])
		*fds = append(*fds, got...)
		switch {
		case errors.Is(err, io.EOF) && done+n > 0:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		case perr != nil:
			return perr
		case flags&syscall.MSG_CTRUNC != 0:
			return fmt.Errorf("%w: more than %d descriptors sent with a frame", ErrProtocol, batchSize)
		}
		done += n
	}
	return nil
}

// unixRights are the descriptors in a received control message.
func unixRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrProtocol, err)
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != syscall.SOL_SOCKET || msgs[i].Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			return fds, fmt.Errorf("%w: control message: %v", ErrProtocol, err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeDescriptors(fds []int) {
	for _, fd := range fds {
		_ = syscall.Close(fd)
	}
}
