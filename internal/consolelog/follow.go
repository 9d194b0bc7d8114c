package consolelog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// TailSize is how many of the last bytes read a Follower keeps to find its
// place again after a rotation.
const TailSize = 256

// maxRotated bounds what a Follower reads of a rotated file to find its
// place: the node keeps 4 MiB, plus what was written since.
const maxRotated = 16 << 20

// Follower reads what is appended to a log file, as tail -f, surviving the
// node's in-place rotation without losing lines (it may repeat a few when
// the log repeats itself). It is not safe for concurrent use.
type Follower struct {
	path string
	off  int64 // next byte to read; -1: the end, not known yet
	tail []byte
}

// NewFollower follows the log at path from offset: 0 for the beginning, -1
// for its end when first read.
func NewFollower(path string, offset int64) *Follower {
	if offset < -1 {
		offset = -1
	}
	return &Follower{path: path, off: offset}
}

// Offset is where the next read starts (-1 before the first read of a
// follower started at the end).
func (f *Follower) Offset() int64 { return f.off }

// Next returns what was appended since the last call, at most MaxChunk
// bytes (call again while it returns a full chunk); nothing when nothing
// was. A missing file is an error that matches fs.ErrNotExist; the place
// is kept, so calling again once the file exists continues.
func (f *Follower) Next() ([]byte, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if f.off < 0 {
		f.off = size
		f.tail = nil
		if size > 0 {
			t := make([]byte, min(TailSize, size))
			if _, err := file.ReadAt(t, size-int64(len(t))); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("reading log end: %w", err)
			}
			f.tail = t
		}
		return nil, nil
	}
	rotated, err := f.rotated(file, size)
	if err != nil {
		return nil, err
	}
	if rotated {
		all := make([]byte, min(size, maxRotated))
		n, err := file.ReadAt(all, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading rotated log: %w", err)
		}
		at, _ := Resume(all[:n], f.tail)
		f.off = int64(at)
	}
	c, err := ReadAt(file, size, f.off, MaxChunk)
	if err != nil {
		return nil, err
	}
	f.off = c.Next
	f.remember(c.Data)
	return c.Data, nil
}

// rotated reports whether the file no longer holds what was read before
// the current offset: shorter than the offset, or other bytes there.
func (f *Follower) rotated(file io.ReaderAt, size int64) (bool, error) {
	if size < f.off {
		return true, nil
	}
	if len(f.tail) == 0 {
		return false, nil
	}
	buf := make([]byte, len(f.tail))
	if _, err := file.ReadAt(buf, f.off-int64(len(buf))); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("checking log position: %w", err)
	}
	return !bytes.Equal(buf, f.tail), nil
}

func (f *Follower) remember(data []byte) {
	if len(data) >= TailSize {
		f.tail = append(f.tail[:0], data[len(data)-TailSize:]...)
		return
	}
	t := append(f.tail, data...)
	if len(t) > TailSize {
		t = t[len(t)-TailSize:]
	}
	f.tail = append([]byte(nil), t...)
}
