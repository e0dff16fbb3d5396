//go:build !linux

package kubecluster

import "syscall"

// procAttr puts each component in its own process group, so Stop can end
// it whole. Where the parent's death cannot signal the child, only Stop
// ends the cluster.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
