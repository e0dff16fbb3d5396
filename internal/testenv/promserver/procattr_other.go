//go:build !linux

package promserver

import "syscall"

// procAttr is empty where the parent's death cannot signal the child; the
// test's cleanup kills Prometheus.
func procAttr() *syscall.SysProcAttr { return nil }
