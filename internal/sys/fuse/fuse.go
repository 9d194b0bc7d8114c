// Package fuse mounts and unmounts FUSE file systems served by go-fuse in
// this process. The flist package builds the file system; this package is
// the only one that makes the mount and unmount calls.
package fuse

import (
	"errors"
	"fmt"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Options of a mount.
type Options struct {
	Name     string        // file system name shown in the mount table
	ReadOnly bool          // mount read-only
	Timeout  time.Duration // kernel caching of entries and attributes
	Debug    bool
	Type     string // subtype shown as fuse.<Type> ("flist" when empty)
	MaxWrite int    // largest write request (go-fuse's default when 0)
}

// Server is a mounted file system being served.
type Server struct {
	srv *fuse.Server
	dir string
}

// Mount mounts root on dir (directly, as root) and serves it until Unmount.
func Mount(dir string, root fs.InodeEmbedder, o Options) (*Server, error) {
	t := o.Timeout
	if o.Type == "" {
		o.Type = "flist"
	}
	opts := &fs.Options{
		EntryTimeout:    &t,
		AttrTimeout:     &t,
		NegativeTimeout: &t,
		MountOptions: fuse.MountOptions{
			AllowOther:   true,
			FsName:       o.Name,
			Name:         o.Type,
			DirectMount:  true,
			Debug:        o.Debug,
			MaxReadAhead: 1 << 20,
			MaxWrite:     o.MaxWrite,
			Options:      []string{"default_permissions"},
		},
	}
	if o.ReadOnly {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mounting fuse on %s: %w", dir, err)
	}
	return &Server{srv: srv, dir: dir}, nil
}

// Wait returns when the file system is unmounted.
func (s *Server) Wait() { s.srv.Wait() }

// Unmount unmounts, lazily when the mount is busy, and waits for the
// server to stop.
func (s *Server) Unmount() error {
	var err error
	for i := 0; i < 5; i++ {
		if err = s.srv.Unmount(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lerr := LazyUnmount(s.dir); lerr != nil {
		return errors.Join(fmt.Errorf("unmounting %s: %w", s.dir, err), lerr)
	}
	return nil
}

// LazyUnmount detaches whatever is mounted on dir (test cleanup, a server
// that died); nothing mounted is not an error.
func LazyUnmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("detaching %s: %w", dir, err)
}
