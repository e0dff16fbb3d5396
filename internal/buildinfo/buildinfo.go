// Package buildinfo says which pipit this binary is.
package buildinfo

import "runtime/debug"

// Version is the module version the binary was built at, or "(devel)"
// for a build from a working tree.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
