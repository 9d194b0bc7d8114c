package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry is one line of the mount table.
type Entry struct {
	Mountpoint   string
	FSType       string // "overlay", "fuse.flist", "btrfs", ...
	Source       string
	SuperOptions string // per file system options: "rw,lowerdir=...,upperdir=..."
}

// Option returns the value of a key=value super option ("" when absent).
func (e Entry) Option(key string) string {
	for _, o := range strings.Split(e.SuperOptions, ",") {
		if k, v, ok := strings.Cut(o, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// ParseEntry parses a mountinfo line (proc(5)): fields up to the "-"
// separator, then type, source and super options; escapes are decoded.
func ParseEntry(line string) (Entry, bool) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return Entry{}, false
	}
	e := Entry{Mountpoint: unescape(f[4])}
	for i := 5; i < len(f); i++ {
		if f[i] != "-" {
			continue
		}
		if i+3 < len(f) {
			e.FSType, e.Source, e.SuperOptions = unescape(f[i+1]), unescape(f[i+2]), unescape(f[i+3])
			return e, true
		}
		return Entry{}, false
	}
	return Entry{}, false
}

// Table returns the mount table, in mount order.
func (m Mounter) Table() ([]Entry, error) {
	path := m.MountInfo
	if path == "" {
		path = "/proc/self/mountinfo"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if e, ok := ParseEntry(sc.Text()); ok {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	return out, nil
}

// Magic numbers of statfs(2)'s f_type.
const (
	MagicFUSE    = 0x65735546
	MagicOverlay = 0x794c7630
)

// ErrDisconnected marks a FUSE mount whose server is gone (ENOTCONN, or
// ECONNABORTED once the kernel aborted the connection).
var ErrDisconnected = errors.New("transport endpoint is not connected")

// Magic returns the f_type of the file system holding path. A FUSE mount
// whose server died is ErrDisconnected.
func (Mounter) Magic(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
			return 0, fmt.Errorf("statfs %s: %w", path, ErrDisconnected)
		}
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Type), nil
}

// Detach lazily unmounts target (MNT_DETACH): used for dead FUSE mounts
// that a normal unmount may not release. Nothing mounted is not an error.
func (Mounter) Detach(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("detaching %s: %w", target, err)
}
