package kubecluster

import "syscall"

// procAttr puts each component in its own process group, so Stop can end
// it whole, and kills it with the test binary, even when a test timeout
// ends the binary before any cleanup runs.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
