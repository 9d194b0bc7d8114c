package zdb

import (
	"runtime/debug"
	"sync"
	"syscall"
)

// Payloads are read through a read-only shared mapping of their data file
// when one can be made: a copy instead of a pread system call per GET.
// This is safe because an entry is written (pwrite) before the index points
// at it, and a data file is only truncated past its last indexed entry, so
// a read never goes past the end of the file. A fault on the mapping (an
// I/O error under the page, a file cut short behind our back) is caught and
// the read falls back to pread, which reports the error; so does a read
// outside the mapping, or a file that could not be mapped at all.

// segMap is the lazily made mapping of a segment's data file. It is made
// once, under the namespace's read lock, and unmapped by closeFiles under
// its write lock.
type segMap struct {
	once sync.Once
	b    []byte // nil when mapping failed
}

// mapping returns the mapping of seg's data file, covering at least size
// bytes (less only if mapping failed, then nil); called with ns.mu held.
func (seg *segment) mapping(size int64) []byte {
	seg.mm.once.Do(func() {
		if size <= 0 || int64(int(size)) != size {
			return
		}
		sc, err := seg.data.SyscallConn()
		if err != nil {
			return
		}
		sc.Control(func(fd uintptr) {
			b, err := syscall.Mmap(int(fd), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
			if err == nil {
				seg.mm.b = b
			}
		})
	})
	return seg.mm.b
}

// unmap releases the mapping; called with ns.mu held for writing.
func (seg *segment) unmap() {
	if seg.mm.b != nil {
		_ = syscall.Munmap(seg.mm.b)
		seg.mm.b = nil
	}
}

// readMapped copies len(p) bytes at off of seg's data file into p from the
// mapping and reports whether it could; called with ns.mu held.
func (ns *namespace) readMapped(seg *segment, p []byte, off int64) bool {
	// The segment being appended to is mapped as large as it may grow, so
	// that later appends are inside the mapping too.
	size := seg.dataSize
	if seg == ns.cur && size < ns.cfg.MaxDataFileSize {
		size = ns.cfg.MaxDataFileSize
	}
	b := seg.mapping(size)
	if off < 0 || off+int64(len(p)) > seg.dataSize || off+int64(len(p)) > int64(len(b)) {
		return false
	}
	return copyFaulting(p, b[off:off+int64(len(p))])
}

// copyFaulting copies src into dst and reports false instead of crashing
// when reading src faults (SIGBUS on a mapped file).
func copyFaulting(dst, src []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			ok = false
		}
	}()
	copy(dst, src)
	return true
}
