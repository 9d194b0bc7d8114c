package flistd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zos-go/zos/internal/flist"
)

// Info is what a flist offers to boot.
type Info struct {
	// ImageRaw is the size of /image.raw (a disk image to boot), -1 when absent.
	ImageRaw int64
	// Kernel is the path inside the flist of the kernel /boot/vmlinuz
	// resolves to ("" when absent). Symlinks are resolved in the flist (an
	// absolute target starts at the flist's root), so the result names a
	// regular file with no symlink on the way: open it under the mount
	// point, never /boot/vmlinuz itself.
	Kernel string
	// Initrd is /boot/initrd.img, resolved like Kernel.
	Initrd string
	// Startup is the parsed /.startup.toml, nil when absent.
	Startup *Startup
	// HasShell tells whether /bin/sh exists: with no image.raw and no shell,
	// the flist is no root file system.
	HasShell bool
}

// Paths Inspect looks at.
const (
	pathImage   = "/image.raw"
	pathKernel  = "/boot/vmlinuz"
	pathInitrd  = "/boot/initrd.img"
	pathStartup = "/.startup.toml"
	pathShell   = "/bin/sh"

	maxStartupSize = 64 << 10
	maxSymlinks    = 40
)

// Inspect tells the boot mode of the flist at url from its metadata, without
// mounting it; only /.startup.toml is read, straight from the flist's
// stores. A probed path that is a symlink out of the flist is ErrEscape.
func (m *Module) Inspect(ctx context.Context, url string) (Info, error) {
	hash, err := m.fetch(ctx, url)
	if err != nil {
		return Info{}, err
	}
	meta, err := flist.Open(ctx, m.flPath(hash))
	if err != nil {
		return Info{}, fmt.Errorf("flist %s: %w", url, err)
	}
	info, startup, err := inspectMeta(meta)
	if err != nil {
		return Info{}, fmt.Errorf("flist %s: %w", url, err)
	}
	// The routes are checked even when nothing is read here: the daemon
	// reads the same stores.
	store, err := m.openStores(meta)
	if err != nil {
		return Info{}, fmt.Errorf("flist %s: %w", url, err)
	}
	defer store.Close()
	if startup != nil {
		data, err := readFile(ctx, store, startup, maxStartupSize)
		if err != nil {
			return Info{}, fmt.Errorf("flist %s: reading %s: %w", url, pathStartup, err)
		}
		if info.Startup, err = ParseStartup(data); err != nil {
			return Info{}, fmt.Errorf("flist %s: %s: %w", url, pathStartup, err)
		}
	}
	return info, nil
}

// inspectMeta fills Info from the tree; the startup file, when there is one,
// is returned to be read.
func inspectMeta(meta *flist.Meta) (Info, *flist.Inode, error) {
	info := Info{ImageRaw: -1}
	probe := func(p string) (string, *flist.Inode, error) {
		rp, in, err := resolve(meta, p)
		if errors.Is(err, errNotFound) {
			return "", nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", p, err)
		}
		if in.Type() != flist.ModeRegular {
			return "", nil, nil
		}
		return rp, in, nil
	}
	if _, in, err := probe(pathImage); err != nil {
		return Info{}, nil, err
	} else if in != nil {
		info.ImageRaw = int64(in.Size)
	}
	var err error
	if info.Kernel, _, err = probe(pathKernel); err != nil {
		return Info{}, nil, err
	}
	if info.Initrd, _, err = probe(pathInitrd); err != nil {
		return Info{}, nil, err
	}
	sh, _, err := probe(pathShell)
	if err != nil {
		return Info{}, nil, err
	}
	info.HasShell = sh != ""
	_, startup, err := probe(pathStartup)
	if err != nil {
		return Info{}, nil, err
	}
	return info, startup, nil
}

var errNotFound = errors.New("not found")

// resolve walks p in the flist following symlinks the way the flist's own
// root would see them (an absolute target starts at the flist's root); a
// relative target climbing above the root is ErrEscape. It returns the
// symlink-free path and its inode.
func resolve(meta *flist.Meta, p string) (string, *flist.Inode, error) {
	root := meta.Inodes[flist.RootIno]
	var trail []*flist.Inode // the entries from below the root down to the current one
	cur := func() *flist.Inode {
		if len(trail) == 0 {
			return root
		}
		return trail[len(trail)-1]
	}
	todo := splitPath(p)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case ".":
			continue
		case "..":
			if len(trail) == 0 {
				return "", nil, ErrEscape
			}
			trail = trail[:len(trail)-1]
			continue
		}
		dir := cur()
		if !dir.IsDir() {
			return "", nil, errNotFound
		}
		next := child(meta, dir, name)
		if next == nil {
			return "", nil, errNotFound
		}
		if next.Type() != flist.ModeSymlink {
			trail = append(trail, next)
			continue
		}
		if links++; links > maxSymlinks {
			return "", nil, errors.New("too many levels of symbolic links")
		}
		if strings.HasPrefix(next.Target, "/") {
			trail = nil
		}
		todo = append(splitPath(next.Target), todo...)
	}
	names := make([]string, len(trail))
	for i, in := range trail {
		names[i] = in.Name
	}
	return "/" + strings.Join(names, "/"), cur(), nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func child(meta *flist.Meta, dir *flist.Inode, name string) *flist.Inode {
	for _, c := range meta.Children[dir.Ino] {
		if in := meta.Inodes[c]; in.Name == name {
			return in
		}
	}
	return nil
}

// readFile reads a small regular file of the flist from its stores; every
// block is checked.
func readFile(ctx context.Context, store flist.Store, in *flist.Inode, max int) ([]byte, error) {
	if in.Size > uint64(max) {
		return nil, fmt.Errorf("%d bytes, at most %d", in.Size, max)
	}
	if in.Size == 0 {
		return nil, nil
	}
	out := make([]byte, 0, in.Size)
	for _, ref := range in.Blocks {
		data, err := store.Get(ctx, ref.ID)
		if err != nil {
			return nil, fmt.Errorf("fetching block %s: %w", ref, err)
		}
		plain, err := flist.OpenBlock(ref, data)
		if err != nil {
			return nil, err
		}
		out = append(out, plain...)
		if len(out) > int(in.Size) {
			break
		}
	}
	if uint64(len(out)) != in.Size {
		return nil, fmt.Errorf("%w: content is %d bytes, want %d", flist.ErrCorrupt, len(out), in.Size)
	}
	return out, nil
}
