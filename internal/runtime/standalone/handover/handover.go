// Package handover is the transport of a zero-downtime upgrade of
// `pipit up`: the running daemon (the old side) passes its listening
// sockets and the other descriptors it must not drop to a second daemon
// started on the same state directory (the new side), then steps aside.
//
// # Transport
//
// The old side listens on a Unix stream socket in the state directory
// (SocketPath). The socket is bound in a private 0700 directory, made
// 0600, then renamed into place, so it is never reachable with wider
// permissions. Listen is called by the daemon holding the state
// directory's lock, so it replaces the socket file there: one left by a
// killed daemon, or the one of the daemon handing over to it (the new
// daemon listens as soon as it holds the lock). Listener.Close removes
// the socket file only if it is still the one that listener created,
// never one a later daemon made since. Both sides check the peer's
// credentials (SO_PEERCRED): only a process of the same uid may hand
// over, and a new side refuses an old side of another uid.
//
// Every message is a frame: a 4-byte big-endian length (1 byte to
// 256 KiB), then a JSON object with a "kind" and no unknown field.
// Descriptors travel as SCM_RIGHTS ancillary data sent with the frame
// they belong to, at most 64 to a frame (MaxFiles in all), and are
// received close-on-exec. The new side gets duplicates: a listening
// socket stays open, its backlog included, while either daemon holds a
// copy, so no connection is refused while the old side closes its own.
//
// # Stages
//
// A hand-over goes through these stages, in this order; each side's
// methods follow them, and a call out of order is refused without
// ending the hand-over:
//
//  1. hello (new → old): the new side's pid and version. The old side
//     answers "accepted" once Accept takes the request, or "refused" with
//     a reason: another uid, a malformed hello, a hand-over already in
//     progress (there is one at a time), or a listener closing.
//  2. files (old → new): one or more "files" frames, each with the names
//     of the descriptors attached to it, in order, and whether more
//     follow; the last one carries the daemon's metadata (opaque bytes,
//     at most MaxMeta).
//  3. released (old → new): the old side has stopped deciding and
//     released the state directory's lock; the new side may take it.
//  4. serving (new → old): the new side accepts on the sockets now; the
//     old side may stop accepting.
//  5. drained (old → new): the old side has finished its requests in
//     flight and forwards none any more; the new side may stop the
//     versions it no longer routes to. Then both sides close. An old side
//     gone at this stage counts as drained.
//
// # Failures
//
// Dial fails with ErrNoListener when no daemon listens (the new daemon
// then reports the lock as held), and with ErrRefused, the reason
// attached, when the old side refuses. Every read and write has a
// deadline: the context's, or DefaultTimeout from the call when the
// context has none; cancelling the context or closing the Outgoing or
// Incoming ends a pending call. A peer that closes its end or dies makes
// the other side's next or pending call fail at once with ErrPeerGone. A
// frame that is oversized, not JSON, of the wrong kind for the stage,
// with more or fewer descriptors than names or with a name given twice
// fails with ErrProtocol. Both errors name the stage ("handover: stage
// files: ..."), and the first error of a hand-over is returned by every
// later call: a hand-over that failed is over. Descriptors that came with
// a refused frame, or with one cut short, are closed, and so are those of
// the earlier batches: a failed hand-over leaks none.
//
// Before Released, a failed hand-over leaves the old daemon as it was: it
// closes the Outgoing, keeps serving, and its listener takes the next
// request. After Released it no longer holds the lock; what it does then
// is the daemon's call.
package handover

import (
	"errors"
	"os"
	"path/filepath"
	"time"
)

// DefaultTimeout bounds each read and write of a hand-over whose context
// has no deadline, so that a peer that hangs cannot stall a daemon.
const DefaultTimeout = 30 * time.Second

// MaxMeta bounds the metadata the old side passes with its descriptors.
const MaxMeta = 64 << 10

// MaxFiles bounds the descriptors of one hand-over, so that a confused
// peer cannot exhaust the new side's descriptor table.
const MaxFiles = 4096

// maxName bounds a descriptor's name, in bytes.
const maxName = 255

var (
	// ErrPeerGone is returned, wrapped with the stage, when the other
	// side closed its end or died.
	ErrPeerGone = errors.New("the other daemon went away")
	// ErrProtocol is returned, wrapped with the stage, for a frame that
	// does not belong at this point of the hand-over.
	ErrProtocol = errors.New("protocol violation")
	// ErrRefused is returned by Dial when the running daemon turned the
	// hand-over down; the error says why.
	ErrRefused = errors.New("hand-over refused")
	// ErrNoListener is returned by Dial when no daemon listens for
	// hand-overs in the state directory.
	ErrNoListener = errors.New("no daemon listens for a hand-over")
)

// Hello is what the new side says of itself when it asks for a hand-over.
type Hello struct {
	// PID is the new daemon's process id.
	PID int
	// Version is the new binary's version.
	Version string
}

// NamedFile is a descriptor passed from the old side to the new one, with
// the name the daemons agree on for it (such as "listener:api").
type NamedFile struct {
	// Name is unique within a hand-over: 1 to 255 bytes of UTF-8.
	Name string
	// File is the descriptor; the receiver owns its copy.
	File *os.File
}

// SocketPath is where a running daemon listens for hand-over requests.
func SocketPath(stateDir string) string {
	return filepath.Join(stateDir, "handover.sock")
}

// deadline is when an operation started now under a context with
// deadline d (ok says whether it has one) must end.
func deadline(d time.Time, ok bool) time.Time {
	if ok {
		return d
	}
	return time.Now().Add(DefaultTimeout)
}
