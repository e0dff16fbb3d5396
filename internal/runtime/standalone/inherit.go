package standalone

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pipit-dev/pipit/internal/spec"
)

// InheritedSocket is a listening socket the daemon did not open itself:
// one systemd opened for it (socket activation) or one a daemon handing
// over passed to it. The daemon serves a listen address from the
// inherited socket that matches it instead of binding the address again,
// which would fail while the other holder still has it open.
type InheritedSocket struct {
	// Name is the listen address as a rollout file (or --api) wrote it,
	// for a socket handed over by a daemon that ran the same address, or
	// systemd's FileDescriptorName; it may be empty.
	Name string
	// Listener is the socket.
	Listener net.Listener
}

// inheritedSockets hands each inherited socket to the first listen address
// that matches it; the rest are closed once the daemon has started.
type inheritedSockets struct {
	mu   sync.Mutex
	free []InheritedSocket
}

// take returns the inherited socket for addr and removes it from the set:
// the one named addr if any, otherwise the one bound to the address addr
// resolves to (":8080" matches a socket bound to every address on port
// 8080). ok is false when none matches.
func (s *inheritedSockets) take(addr string) (ln net.Listener, ok bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.index(func(is InheritedSocket) bool { return is.Name == addr })
	if i < 0 && !spec.HasZeroPort(addr) {
		want, err := net.ResolveTCPAddr("tcp", addr)
		if err == nil {
			i = s.index(func(is InheritedSocket) bool { return sameTCPAddr(want, is.Listener.Addr()) })
		}
	}
	if i < 0 {
		return nil, false
	}
	ln = s.free[i].Listener
	s.free = append(s.free[:i], s.free[i+1:]...)
	return ln, true
}

func (s *inheritedSockets) index(match func(InheritedSocket) bool) int {
	for i, is := range s.free {
		if match(is) {
			return i
		}
	}
	return -1
}

// closeUnclaimed closes the inherited sockets no listen address took: a
// rollout given up on, or a systemd socket the files no longer name.
func (s *inheritedSockets) closeUnclaimed(log *slog.Logger) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, is := range s.free {
		log.Warn("closing an inherited socket no listen address names", "name", is.Name, "addr", is.Listener.Addr().String())
		is.Listener.Close()
	}
	s.free = nil
}

// sameTCPAddr reports whether a socket bound to got serves the resolved
// listen address want. An unspecified IP in want (":8080") matches an
// unspecified IP of either family in got.
func sameTCPAddr(want *net.TCPAddr, got net.Addr) bool {
	g, ok := got.(*net.TCPAddr)
	if !ok || g.Port != want.Port {
		return false
	}
	if want.IP == nil || want.IP.IsUnspecified() {
		return g.IP.IsUnspecified()
	}
	return want.IP.Equal(g.IP)
}

// Environment variables of systemd's socket activation (sd_listen_fds(3)).
const (
	envListenPID     = "LISTEN_PID"
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
)

// listenFDsStart is the first descriptor systemd passes.
const listenFDsStart = 3

// SystemdSockets returns the listening sockets systemd passed to this
// process (socket activation), or none when it passed none or passed them
// to another process (LISTEN_PID). It unsets the variables either way, so
// that the processes pipit starts do not take the sockets for theirs. A
// passed descriptor that is not a listening TCP socket is an error.
func SystemdSockets() ([]InheritedSocket, error) {
	pid, fds, names := os.Getenv(envListenPID), os.Getenv(envListenFDs), os.Getenv(envListenFDNames)
	for _, v := range []string{envListenPID, envListenFDs, envListenFDNames} {
		os.Unsetenv(v)
	}
	if fds == "" || pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socket activation: %s=%q is not a count of descriptors", envListenFDs, fds)
	}
	nameList := strings.Split(names, ":")
	var out []InheritedSocket
	for i := range n {
		fd := listenFDsStart + i
		syscall.CloseOnExec(fd)
		ln, err := listenerFromFD(fd)
		if err != nil {
			closeSockets(out)
			return nil, fmt.Errorf("socket activation: descriptor %d: %w", fd, err)
		}
		is := InheritedSocket{Listener: ln}
		if i < len(nameList) {
			is.Name = nameList[i]
		}
		out = append(out, is)
	}
	return out, nil
}

// listenerFromFD makes a listener of descriptor fd, which it takes over.
func listenerFromFD(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd))
	defer f.Close() // FileListener holds a duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	if _, ok := ln.Addr().(*net.TCPAddr); !ok {
		ln.Close()
		return nil, errors.New("not a TCP socket: pipit listens on TCP only (ListenStream=host:port)")
	}
	// A connected or unbound socket makes a listener too, whose Accept
	// then fails forever.
	if on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || on == 0 {
		ln.Close()
		return nil, errors.New("not a listening socket")
	}
	return ln, nil
}

func closeSockets(list []InheritedSocket) {
	for _, is := range list {
		is.Listener.Close()
	}
}
