// Package cpio writes and reads deterministic cpio "newc" archives, the
// format of Linux initramfs images. The node image builder (internal/image)
// and the guest initramfs of virtual machines (internal/node/vm) use it.
package cpio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Entry kinds of an archive.
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// Entry is one member of an archive.
type Entry struct {
	Path   string // absolute, clean ("/usr/bin/zos")
	Mode   uint32 // type and permission bits
	Data   []byte // file content or symlink target
	Source string // file content read from this host path at write time, when Data is nil
	Rdev   [2]uint32
}

// Archive is an in-memory list of entries written as a deterministic cpio
// "newc" archive: sorted by path, inode numbers in that order, uid/gid 0
// and a fixed mtime, so the same inputs always give the same bytes.
type Archive struct {
	entries map[string]*Entry
}

// NewArchive returns an empty archive.
func NewArchive() *Archive { return &Archive{entries: map[string]*Entry{}} }

// add records e and the directories above it. A later add of the same path
// wins, except that a directory never replaces a file.
func (a *Archive) add(e *Entry) error {
	p := path.Clean("/" + e.Path)
	if p == "/" {
		return nil
	}
	e.Path = p
	if old, ok := a.entries[p]; ok && old.Mode&0o170000 != modeDir && e.Mode&0o170000 == modeDir {
		return nil
	}
	a.entries[p] = e
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := a.entries[d]; ok {
			break
		}
		a.entries[d] = &Entry{Path: d, Mode: modeDir | 0o755}
	}
	return nil
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm uint32) error {
	return a.add(&Entry{Path: p, Mode: modeDir | perm})
}

// File adds a file with the given content.
func (a *Archive) File(p string, perm uint32, data []byte) error {
	return a.add(&Entry{Path: p, Mode: modeFile | perm, Data: data})
}

// HostFile adds a file whose content is read from src when written.
func (a *Archive) HostFile(p string, perm uint32, src string) error {
	return a.add(&Entry{Path: p, Mode: modeFile | perm, Source: src})
}

// Symlink adds a symbolic link to target.
func (a *Archive) Symlink(p, target string) error {
	return a.add(&Entry{Path: p, Mode: modeSymlink | 0o777, Data: []byte(target)})
}

// CharDev adds a character device node.
func (a *Archive) CharDev(p string, perm, major, minor uint32) error {
	return a.add(&Entry{Path: p, Mode: modeChar | perm, Rdev: [2]uint32{major, minor}})
}

// Has reports whether p is in the archive.
func (a *Archive) Has(p string) bool { _, ok := a.entries[path.Clean("/"+p)]; return ok }

// Paths lists the archive's paths, sorted.
func (a *Archive) Paths() []string {
	ps := make([]string, 0, len(a.entries))
	for p := range a.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// FixedMtime is the modification time of every entry (2020-01-01 UTC).
const FixedMtime = 1577836800

// WriteTo writes the archive in newc format. readFile loads HostFile
// contents.
func (a *Archive) WriteTo(w io.Writer, readFile func(string) ([]byte, error)) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	for i, p := range a.Paths() {
		e := a.entries[p]
		data := e.Data
		if e.Mode&0o170000 == modeFile && data == nil && e.Source != "" {
			b, err := readFile(e.Source)
			if err != nil {
				return fmt.Errorf("reading %s for %s: %w", e.Source, p, err)
			}
			data = b
		}
		nlink := uint32(1)
		if e.Mode&0o170000 == modeDir {
			nlink = 2
		}
		if err := writeHeader(bw, uint32(i+1), e.Mode, nlink, FixedMtime, e.Rdev, strings.TrimPrefix(p, "/"), data); err != nil {
			return err
		}
	}
	if err := writeHeader(bw, 0, 0, 1, 0, [2]uint32{}, "TRAILER!!!", nil); err != nil {
		return err
	}
	return bw.Flush()
}

func pad4(w io.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

func writeHeader(w io.Writer, ino, mode, nlink, mtime uint32, rdev [2]uint32, name string, data []byte) error {
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return err
	}
	if err := pad4(w, len(hdr)+len(name)+1); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return pad4(w, len(data))
}

// ReadEntry is an entry read back from an archive.
type ReadEntry struct {
	Path string
	Mode uint32
	Size int
	Data []byte // file content or symlink target
}

// ErrFormat reports a malformed archive.
var ErrFormat = errors.New("not a newc cpio archive")

// ReadArchive lists the entries of a newc archive (for tests and the
// image's self-checks).
func ReadArchive(r io.Reader) ([]ReadEntry, error) {
	br := bufio.NewReader(r)
	var out []ReadEntry
	off := 0
	read := func(n int) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(br, b)
		off += n
		return b, err
	}
	skipPad := func() error {
		if r := off % 4; r != 0 {
			_, err := read(4 - r)
			return err
		}
		return nil
	}
	for {
		hdr, err := read(110)
		if err != nil {
			return nil, fmt.Errorf("%w: header at %d: %v", ErrFormat, off, err)
		}
		if string(hdr[:6]) != "070701" {
			return nil, fmt.Errorf("%w: magic %q at %d", ErrFormat, hdr[:6], off-110)
		}
		field := func(i int) (int, error) {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			return int(v), err
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameSize, err3 := field(11)
		if err := errors.Join(err1, err2, err3); err != nil || nameSize < 1 || nameSize > 4096 {
			return nil, fmt.Errorf("%w: bad header fields at %d", ErrFormat, off-110)
		}
		name, err := read(nameSize)
		if err != nil {
			return nil, fmt.Errorf("%w: name: %v", ErrFormat, err)
		}
		if err := skipPad(); err != nil {
			return nil, err
		}
		n := strings.TrimRight(string(name), "\x00")
		if n == "TRAILER!!!" {
			return out, nil
		}
		e := ReadEntry{Path: "/" + n, Mode: uint32(mode), Size: size}
		if size > 1<<30 {
			return nil, fmt.Errorf("%w: %s is %d bytes", ErrFormat, n, size)
		}
		if e.Data, err = read(size); err != nil {
			return nil, fmt.Errorf("%w: data of %s: %v", ErrFormat, n, err)
		}
		if err := skipPad(); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}
