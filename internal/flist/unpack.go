package flist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Unpack writes the whole tree of m under dir (which must be empty or
// missing), fetching and checking every block: the "copy everything first"
// alternative to a lazy mount. Names come from validated metadata (no "/",
// no ".."), every entry is created fresh (O_EXCL, symlinks never followed),
// so nothing is written outside dir. Owners and device nodes need root; as
// another user they are skipped.
func Unpack(ctx context.Context, m *Meta, store Store, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	root := os.Geteuid() == 0
	var dirs []struct {
		path string
		in   *Inode
	}
	err := m.Walk(func(rel string, in *Inode) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p := filepath.Join(dir, rel)
		perm := os.FileMode(in.Mode & 0o777)
		switch in.Type() {
		case ModeDir:
			if rel != "" {
				if err := os.Mkdir(p, 0o700); err != nil {
					return fmt.Errorf("unpacking %s: %w", rel, err)
				}
			}
			dirs = append(dirs, struct {
				path string
				in   *Inode
			}{p, in})
			return nil
		case ModeSymlink:
			if err := os.Symlink(in.Target, p); err != nil {
				return fmt.Errorf("unpacking %s: %w", rel, err)
			}
		case ModeRegular:
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return fmt.Errorf("unpacking %s: %w", rel, err)
			}
			// As a mount reads it: the blocks end to end, cut at
			// the size, zeros where they hold less (rfs flists).
			var written uint64
			for _, ref := range in.Blocks {
				data, err := store.Get(ctx, ref.ID)
				if err == nil {
					data, err = OpenBlock(ref, data)
				}
				if err == nil {
					data = data[:min(uint64(len(data)), in.Size-written)]
					_, err = f.Write(data)
					written += uint64(len(data))
				}
				if err != nil {
					f.Close()
					return fmt.Errorf("unpacking %s: %w", rel, err)
				}
			}
			if err := f.Truncate(int64(in.Size)); err != nil {
				f.Close()
				return fmt.Errorf("unpacking %s: %w", rel, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("unpacking %s: %w", rel, err)
			}
		default:
			if !root {
				return nil
			}
			if err := syscall.Mknod(p, in.Mode, int(in.Rdev)); err != nil {
				return fmt.Errorf("unpacking %s: %w", rel, err)
			}
		}
		return setMeta(p, in, perm, root)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children first: permissions may forbid writing
		if err := setMeta(dirs[i].path, dirs[i].in, os.FileMode(dirs[i].in.Mode&0o777), root); err != nil {
			return err
		}
	}
	return nil
}

func setMeta(p string, in *Inode, perm os.FileMode, root bool) error {
	if root {
		if err := os.Lchown(p, int(in.UID), int(in.GID)); err != nil {
			return fmt.Errorf("unpacking %s: %w", p, err)
		}
	}
	if in.Type() == ModeSymlink {
		return nil
	}
	mode := perm
	if in.Mode&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if in.Mode&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if in.Mode&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("unpacking %s: %w", p, err)
	}
	t := time.Unix(in.Mtime, 0)
	if err := os.Chtimes(p, t, t); err != nil {
		return fmt.Errorf("unpacking %s: %w", p, err)
	}
	return nil
}
