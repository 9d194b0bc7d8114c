// Package mount mounts and unmounts file systems and answers questions about
// mounted ones (is it mounted, how big, read-only). The node's storage module
// uses it for btrfs pools and the tmpfs cache fallback.
package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mounter mounts with mount(2) and reads the mount table from MountInfo.
type Mounter struct {
	MountInfo string // "/proc/self/mountinfo" when empty
}

// Mount mounts source on target (created if missing) with the given file
// system type and data options ("" for none).
func (Mounter) Mount(source, target, fstype, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("creating mount point %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, 0, data); err != nil {
		return fmt.Errorf("mounting %s (%s) on %s: %w", source, fstype, target, err)
	}
	return nil
}

// Unmount unmounts target, retrying for a short while when it is busy and
// detaching lazily as a last resort. Unmounting something not mounted is not
// an error.
func (Mounter) Unmount(target string) error {
	var err error
	for i := 0; i < 10; i++ {
		err = unix.Unmount(target, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if errors.Is(err, unix.EBUSY) {
		if derr := unix.Unmount(target, unix.MNT_DETACH); derr == nil {
			return nil
		}
	}
	return fmt.Errorf("unmounting %s: %w", target, err)
}

// Mounted reports whether something is mounted exactly on target.
func (m Mounter) Mounted(target string) (bool, error) {
	path := m.MountInfo
	if path == "" {
		path = "/proc/self/mountinfo"
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("reading mount table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if mp, ok := MountPoint(sc.Text()); ok && mp == abs {
			return true, nil
		}
	}
	return false, sc.Err()
}

// MountPoint returns the mount point field (the fifth) of a mountinfo line,
// with the kernel's octal escapes (\040 for space, ...) decoded.
func MountPoint(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return "", false
	}
	return unescape(f[4]), true
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isOctal reports whether s is three octal digits encoding one byte.
func isOctal(s string) bool {
	return len(s) == 3 && s[0] >= '0' && s[0] <= '3' &&
		s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7'
}

// Stat is the size and state of a mounted file system.
type Stat struct {
	Total    uint64 // bytes
	Avail    uint64 // bytes available to unprivileged writers
	ReadOnly bool
}

// Statfs returns the size and state of the file system holding path.
func (Mounter) Statfs(path string) (Stat, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Stat{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return Stat{
		Total:    st.Blocks * bs,
		Avail:    st.Bavail * bs,
		ReadOnly: st.Flags&unix.ST_RDONLY != 0,
	}, nil
}
