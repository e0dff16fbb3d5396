//go:build !unix

package proxy

import "net"

// socketPeeker is not available here: idle connections are checked by
// what their reader already holds (see upConn.quiet).
type socketPeeker struct{}

func newSocketPeeker(net.Conn) *socketPeeker { return nil }

func (*socketPeeker) quiet() bool { return true }
