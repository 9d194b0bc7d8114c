// Package sysinfo reads what the kernel says about the machine: memory,
// uptime and logical CPUs, for the node's capacity and uptime reports.
package sysinfo

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Info is a snapshot of the machine.
type Info struct {
	CPUs   int
	Memory uint64 // total RAM in bytes
	Uptime time.Duration
}

// Read returns the current Info.
func Read() (Info, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return Info{}, fmt.Errorf("sysinfo: %w", err)
	}
	return Info{
		CPUs:   runtime.NumCPU(),
		Memory: uint64(si.Totalram) * uint64(si.Unit),
		Uptime: time.Duration(si.Uptime) * time.Second,
	}, nil
}
