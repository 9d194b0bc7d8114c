package consolelog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestReadAt(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name     string
		offset   int64
		max      int
		want     string
		next     int64
		rotated  bool
		wantSize int64
	}{
		{"from start", 0, 4, "0123", 4, false, 10},
		{"middle", 4, 4, "4567", 8, false, 10},
		{"short at end", 8, 4, "89", 10, false, 10},
		{"at end", 10, 4, "", 10, false, 10},
		{"last bytes", -1, 3, "789", 10, false, 10},
		{"last more than size", -1, 100, "0123456789", 10, false, 10},
		{"past end is a rotation", 11, 4, "0123", 4, true, 10},
		{"default max", 0, 0, "0123456789", 10, false, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ReadAt(bytes.NewReader(data), int64(len(data)), tt.offset, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if string(c.Data) != tt.want || c.Next != tt.next || c.Rotated != tt.rotated || c.Size != tt.wantSize {
				t.Errorf("got %q next %d rotated %t size %d, want %q next %d rotated %t size %d",
					c.Data, c.Next, c.Rotated, c.Size, tt.want, tt.next, tt.rotated, tt.wantSize)
			}
		})
	}
}

func TestBound(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{-1, DefaultChunk}, {0, DefaultChunk}, {10, 10}, {MaxChunk, MaxChunk}, {MaxChunk + 1, MaxChunk}, {1 << 40, MaxChunk}} {
		if got := Bound(tt.in); got != tt.want {
			t.Errorf("Bound(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestReadBig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 3*MaxChunk), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Read(p, 0, 10*MaxChunk)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Data) != MaxChunk || c.Next != MaxChunk || c.Size != 3*MaxChunk {
		t.Fatalf("got %d bytes next %d size %d, want %d bytes", len(c.Data), c.Next, c.Size, MaxChunk)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none"), 0, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: got %v, want ErrNotExist", err)
	}
}

func TestResume(t *testing.T) {
	for _, tt := range []struct {
		data, tail string
		at         int
		found      bool
	}{
		{"abcdef", "cd", 4, true},
		{"abcdef", "zz", 0, false},
		{"abcdef", "", 0, false},
		{"abab", "ab", 2, true},
		// The rotation kept only the last 40 bytes of what was read.
		{strings.Repeat("y", 40) + "new", strings.Repeat("x", 100) + strings.Repeat("y", 40), 40, true},
		// Too short an overlap is not trusted.
		{strings.Repeat("y", 20) + "new", strings.Repeat("x", 100) + strings.Repeat("y", 20), 0, false},
	} {
		at, found := Resume([]byte(tt.data), []byte(tt.tail))
		if at != tt.at || found != tt.found {
			t.Errorf("Resume(%q, %q) = %d %t, want %d %t", tt.data, tt.tail, at, found, tt.at, tt.found)
		}
	}
}

func appendTo(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("=", i%7))
		b.WriteString(" ")
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(itoa(i))
		b.WriteString("\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

func next(t *testing.T, f *Follower) string {
	t.Helper()
	var out []byte
	for {
		b, err := f.Next()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			return string(out)
		}
		out = append(out, b...)
	}
}

func TestFollowerRotation(t *testing.T) {
	tests := []struct {
		name string
		keep int // bytes the rotation keeps
		want string
	}{
		// The usual case: the node keeps the end, which holds what was read.
		{"keeps the end", 400, lines(0, 300)},
		// Everything was dropped: start over from the new start.
		{"keeps nothing", 0, lines(0, 100) + lines(200, 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "log")
			f := NewFollower(p, 0)
			if _, err := f.Next(); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing file: got %v, want ErrNotExist", err)
			}
			appendTo(t, p, lines(0, 100))
			got := next(t, f)
			appendTo(t, p, lines(100, 200))
			if tt.keep == 0 {
				// Rotated before the follower read the second batch: lost.
				testutil.KeepTail(t, p, 0)
			} else {
				got += next(t, f)
				testutil.KeepTail(t, p, tt.keep)
			}
			appendTo(t, p, lines(200, 300))
			got += next(t, f)
			if got != tt.want {
				t.Errorf("got %d bytes, want %d\ngot tail %q", len(got), len(tt.want), got[max(0, len(got)-200):])
			}
		})
	}
}

// A rotation that leaves the file longer than the offset is noticed too.
func TestFollowerRotationLonger(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	appendTo(t, p, lines(0, 50))
	f := NewFollower(p, 0)
	got := next(t, f)
	testutil.KeepTail(t, p, 300)
	appendTo(t, p, lines(50, 400)) // the file grows past the old offset before the next read
	got += next(t, f)
	if want := lines(0, 400); got != want {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
}

func TestFollowerFromEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	appendTo(t, p, "old\n")
	f := NewFollower(p, -1)
	if got := next(t, f); got != "" {
		t.Fatalf("first read from the end: got %q", got)
	}
	appendTo(t, p, "new\n")
	if got := next(t, f); got != "new\n" {
		t.Fatalf("got %q, want %q", got, "new\n")
	}
}
