package proxy

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Connection limits keep one client, or a flood of them, from taking all
// of a listener's memory and file descriptors. The overall bound is
// HAProxy's maxconn: past it the server stops accepting and the kernel's
// backlog holds the rest. The per-client bound is nginx's limit_conn: a
// client past it has its new connection closed at once, while the
// connections of everyone else are accepted as usual.

// clientCounter counts what each client address holds at once:
// connections, or requests in flight for the clients of a trusted proxy.
type clientCounter struct {
	limit int // 0: no bound
	mu    sync.Mutex
	held  map[netip.Addr]int
}

func newClientCounter(limit int) *clientCounter {
	return &clientCounter{limit: limit, held: map[netip.Addr]int{}}
}

// acquire counts one more for addr, or reports false, counting nothing,
// when addr holds its limit already.
func (c *clientCounter) acquire(addr netip.Addr) bool {
	if c.limit <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[addr] >= c.limit {
		return false
	}
	c.held[addr]++
	return true
}

// release gives back one that acquire counted for addr.
func (c *clientCounter) release(addr netip.Addr) {
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.held[addr] - 1; n > 0 {
		c.held[addr] = n
	} else {
		delete(c.held, addr)
	}
}

// peerAddr is the IP address of a connection's peer, unmapped (an IPv4
// client on a dual-stack socket counts as itself); the zero Addr when
// the peer is no IP endpoint.
func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// countedConn is an accepted connection holding a place in the limits
// until it is closed, by whichever server ends up owning it.
type countedConn struct {
	net.Conn
	released atomic.Bool
	release  func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.release()
	}
	return err
}

// forwardedClient is the key of a client behind a trusted proxy on
// info's connection, given its request's X-Forwarded-For values: its
// effective address (effectiveClientAddr writes a valid one, or the
// peer's).
func forwardedClient[S ~string | ~[]byte](info *connInfo, xff []S) netip.Addr {
	a, _ := netip.ParseAddr(effectiveClientAddr(info, xff))
	return a
}

// tooManyInFlight answers a forwarded client over its bound.
const tooManyInFlight = "too many requests in flight from one client"
