package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/loop"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/proc"
)

// Leftovers are what of a lab is still on the machine.
type Leftovers struct {
	Processes  []int
	Mounts     []string
	Loops      []string
	Namespaces []string
}

// Empty reports whether nothing is left.
func (l Leftovers) Empty() bool {
	return len(l.Processes)+len(l.Mounts)+len(l.Loops)+len(l.Namespaces) == 0
}

func (l Leftovers) String() string {
	return fmt.Sprintf("processes %v, mounts %v, loop devices %v, namespaces %v", l.Processes, l.Mounts, l.Loops, l.Namespaces)
}

// Find lists what of lab id with directory dir is on the machine: the
// processes whose command line names a path under dir (nodes, their 0-db,
// QEMU, virtiofsd, flist daemons), mounts under dir, loop devices backed
// by files under dir, and namespaces of the lab and its nodes' resources.
func Find(dir, id string) (Leftovers, error) {
	var l Leftovers
	dir = filepath.Clean(dir)
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil || !strings.Contains(string(b), dir+"/") {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		l.Processes = append(l.Processes, pid)
	}
	table, err := mount.Mounter{}.Table()
	if err != nil {
		return l, err
	}
	for _, e := range table {
		if e.Mountpoint == dir || strings.HasPrefix(e.Mountpoint, dir+"/") {
			l.Mounts = append(l.Mounts, e.Mountpoint)
		}
	}
	backs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range backs {
		v, err := os.ReadFile(bf)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(v)), dir+"/") {
			l.Loops = append(l.Loops, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(bf))))
		}
	}
	if id != "" {
		l.Namespaces, err = netns.List(nsPrefix(id))
		if err != nil {
			return l, err
		}
	}
	return l, nil
}

// Clean removes what Find finds: kills the processes (and waits for them),
// unmounts deepest first, detaches loop devices, deletes namespaces.
func Clean(dir, id string) error {
	l, err := Find(dir, id)
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range l.Processes {
		if err := proc.Signal(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("killing %d: %w", pid, err))
		}
	}
	for _, pid := range l.Processes {
		waitGone(pid, 10*time.Second)
	}
	for i := len(l.Mounts) - 1; i >= 0; i-- {
		if err := (mount.Mounter{}).Detach(l.Mounts[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dev := range l.Loops {
		if err := (loop.Losetup{}).Detach(dev); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range l.Namespaces {
		if err := netns.Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitGone waits until pid no longer exists, at most d.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if err := proc.Signal(pid, 0); errors.Is(err, unix.ESRCH) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
