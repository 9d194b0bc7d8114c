// Package consolelog reads the console log of a virtual machine, a file the
// node appends to and rotates in place (once it passes 8 MiB the node
// rewrites it with its last 4 MiB). The node API (zos.zmachine.logs) reads
// chunks of it; the zlogs workload follows it line by line; zosctl finds
// where to resume after a rotation (Resume). It is pure file reading, so the
// CLI links it without the node.
package consolelog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxChunk is the most bytes one read returns.
const MaxChunk = 1 << 20

// DefaultChunk is what a read returns when the caller names no maximum.
const DefaultChunk = 64 << 10

// Chunk is a piece of a log file.
type Chunk struct {
	Data    []byte
	Next    int64 // the offset to read from next
	Size    int64 // the size of the file when it was read
	Rotated bool  // the offset was past the end: the file was rotated, Data starts at 0
}

// Bound returns max bounded to (0, MaxChunk], DefaultChunk for max <= 0.
func Bound(max int) int {
	switch {
	case max <= 0:
		return DefaultChunk
	case max > MaxChunk:
		return MaxChunk
	}
	return max
}

// ReadAt reads up to max bytes (bounded by Bound) at offset of r, whose size
// is size. A negative offset reads the last max bytes. An offset past size
// means the file was rotated: the read restarts at 0 with Rotated set.
func ReadAt(r io.ReaderAt, size, offset int64, max int) (Chunk, error) {
	n := int64(Bound(max))
	c := Chunk{Size: size}
	switch {
	case offset < 0:
		offset = max64(0, size-n)
	case offset > size:
		offset, c.Rotated = 0, true
	}
	buf := make([]byte, min(n, size-offset))
	got, err := r.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return Chunk{}, fmt.Errorf("reading log at %d: %w", offset, err)
	}
	c.Data = buf[:got]
	c.Next = offset + int64(got)
	return c, nil
}

// Read reads a chunk of the log file at path; see ReadAt.
func Read(path string, offset int64, max int) (Chunk, error) {
	f, err := os.Open(path)
	if err != nil {
		return Chunk{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Chunk{}, err
	}
	return ReadAt(f, st.Size(), offset, max)
}

// MinOverlap is the shortest end of the old log that Resume trusts to
// start a rotated log.
const MinOverlap = 32

// Resume returns where to continue in data, the start of a rotated log, when
// tail is the end of what was already read: just after the first
// occurrence of tail (repeating a little rather than losing any), or, when
// the rotation kept less than tail, after the longest end of tail (at least
// MinOverlap bytes) that data starts with. It returns 0 with found false
// when data does not hold what was read.
func Resume(data, tail []byte) (at int, found bool) {
	if len(tail) == 0 {
		return 0, false
	}
	if i := bytes.Index(data, tail); i >= 0 {
		return i + len(tail), true
	}
	for k := min(len(tail)-1, len(data)); k >= MinOverlap; k-- {
		if bytes.HasPrefix(data, tail[len(tail)-k:]) {
			return k, true
		}
	}
	return 0, false
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
