package promserver

import "syscall"

// procAttr kills Prometheus with the test binary, even when a test timeout
// ends the binary before its cleanups run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
