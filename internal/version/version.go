// Package version holds the build version, stamped by the Makefile with
// -ldflags "-X github.com/zos-go/zos/internal/version.Version=...".
package version

import "runtime/debug"

// Version is set at link time; empty in plain `go build` and tests.
var Version = ""

// String returns the stamped version, or the module version from the build
// info, or "dev".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
