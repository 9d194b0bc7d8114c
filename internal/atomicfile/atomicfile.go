// Package atomicfile writes files whole: the data goes to a temporary file
// in the destination's directory, which is synced, given its mode, renamed
// over the destination and the directory synced, so that a reader or a
// power cut sees the old content or the new one, never a part (tailscale's
// atomicfile). The node's state files (seed, events sequence, VM state,
// pool markers, 0-db settings, certificates) and the flist stores and hub
// use it.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically with mode perm. The directory
// must exist.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// File is a temporary file that becomes path on Commit. Close before Commit
// removes it, leaving path as it was; Close after Commit does nothing, so a
// deferred Close is the abort path.
type File struct {
	*os.File
	path string
	perm fs.FileMode
	done bool // committed or closed
}

// Create opens a temporary file next to path, to be written and committed.
// Its name starts with a dot and the base of path.
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &File{File: f, path: path, perm: perm}, nil
}

// Commit syncs the file, gives it its mode, renames it over the
// destination and syncs the directory. On failure the temporary file is
// removed and the destination keeps its old content.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: commit after close")
	}
	f.done = true
	err := f.File.Sync()
	if err == nil {
		err = f.File.Chmod(f.perm)
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.File.Name(), f.path)
	}
	if err != nil {
		_ = os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := SyncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}

// Close removes the temporary file unless it was committed.
func (f *File) Close() error {
	if f.done {
		return nil
	}
	f.done = true
	err := f.File.Close()
	if rerr := os.Remove(f.File.Name()); err == nil {
		err = rerr
	}
	return err
}

// Rename moves the finished file tmp to path (same file system), syncing
// it first and the directory after: for files written by something else
// than File (an SQLite database, an upload streamed to a spool directory).
func Rename(tmp, path string) error {
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir syncs a directory, making the entries renamed into it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
