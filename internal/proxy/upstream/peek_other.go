//go:build !unix

package upstream

import "net"

// socketPeeker is not available here: idle connections are checked by
// what their reader already holds (see conn.quiet).
type socketPeeker struct{}

func newSocketPeeker(net.Conn) *socketPeeker { return nil }

func (*socketPeeker) quiet() bool { return true }
