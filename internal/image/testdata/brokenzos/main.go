// Command brokenzos is a broken zos release for the image's update test:
// it says its version (the node's preflight, `zos version`, passes) and
// exits at start, as a release that crashes would, or (mode hang) never
// comes up nor exits, as a release stuck at start would.
package main

import (
	"fmt"
	"os"
	"time"
)

// version and mode are set with -ldflags -X main.version=V -X main.mode=M.
var (
	version = "v0.0.0"
	mode    = "exit"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	if mode == "hang" {
		fmt.Fprintf(os.Stderr, "brokenzos %s: this release hangs at start\n", version)
		for {
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintf(os.Stderr, "brokenzos %s: this release exits at start\n", version)
	os.Exit(1)
}
