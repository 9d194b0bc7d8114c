// Package beneath opens files inside a directory tree without following
// any symbolic link on the way (openat2 with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS): the node reads files out of trees a tenant shaped
// (a flist's kernel and initrd) without being led to its own files.
// internal/node/vm uses it.
package beneath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Refusals, wrapped in the errors of OpenRegular.
var (
	// ErrLink: a component of the path is a symbolic link.
	ErrLink = errors.New("symbolic link on the path")
	// ErrOutside: the path leaves the tree ("..") or crosses a mount.
	ErrOutside = errors.New("path leaves the tree")
	// ErrNotRegular: the file is a directory, device, FIFO or socket.
	ErrNotRegular = errors.New("not a regular file")
)

// OpenRegular opens name (relative to root; a leading "/" is the root)
// for reading. Every component is resolved inside root and on root's
// mount, none may be a symbolic link (ErrLink, ErrOutside), and the file
// must be a regular one (ErrNotRegular): a FIFO or device is never waited
// on. root itself is trusted (the caller's path).
func OpenRegular(root, name string) (*os.File, error) {
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		return nil, fmt.Errorf("opening %q under %s: %w", name, root, ErrNotRegular)
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", root, err)
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
		// O_NONBLOCK: opening a FIFO does not wait for a writer.
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("opening %s under %s: %w", name, root, ErrLink)
	case errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("opening %s under %s: %w", name, root, ErrOutside)
	case err != nil:
		return nil, fmt.Errorf("opening %s under %s: %w", name, root, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("opening %s under %s: %w", name, root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("opening %s under %s: %w", name, root, ErrNotRegular)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("opening %s under %s: %w", name, root, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}
