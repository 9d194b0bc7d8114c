// Command brokenzos is a broken zos release for the image's update test:
// it says its version (the node's preflight, `zos version`, passes) and
// exits at start, as a release that crashes would.
package main

import (
	"fmt"
	"os"
)

// version is set with -ldflags -X main.version=V.
var version = "v0.0.0"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	fmt.Fprintf(os.Stderr, "brokenzos %s: this release exits at start\n", version)
	os.Exit(1)
}
