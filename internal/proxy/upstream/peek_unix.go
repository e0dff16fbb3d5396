//go:build unix

package upstream

import (
	"net"
	"syscall"
)

// socketPeeker looks at a TCP socket without reading from it or waiting.
type socketPeeker struct {
	raw syscall.RawConn
	// peek is p.peekFD, made once: a method value passed to RawConn.Read
	// would otherwise be allocated on every call.
	peek func(fd uintptr) bool
	buf  [1]byte
	err  error
}

// newSocketPeeker returns a peeker of c's socket, nil when c has none.
func newSocketPeeker(c net.Conn) *socketPeeker {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &socketPeeker{raw: raw}
	p.peek = p.peekFD
	return p
}

func (p *socketPeeker) peekFD(fd uintptr) bool {
	_, _, p.err = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true // never wait for readiness: an empty socket is the answer
}

// quiet reports whether the socket has nothing to read: no bytes, no end
// of stream (a read of zero bytes), no error. Only a read that would
// have had to wait says so.
func (p *socketPeeker) quiet() bool {
	if err := p.raw.Read(p.peek); err != nil {
		return false
	}
	return p.err == syscall.EAGAIN || p.err == syscall.EWOULDBLOCK
}
