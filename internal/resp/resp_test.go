package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	small := Limits{MaxArgs: 3, MaxBulk: 8, MaxLine: 64, MaxRequest: 16}
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "array", in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", want: []string{"GET", "k"}},
		{name: "empty bulk", in: "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$1\r\nv\r\n", want: []string{"SET", "", "v"}},
		{name: "binary", in: "*2\r\n$3\r\nGET\r\n$4\r\n\x00\r\n\xff\r\n", want: []string{"GET", "\x00\r\n\xff"}},
		{name: "inline", in: "PING  hello\r\n", want: []string{"PING", "hello"}},
		{name: "inline lf", in: "PING\n", want: []string{"PING"}},
		{name: "empty array", in: "*0\r\n", wantErr: true}, // 0-db: -Missing arguments
		{name: "too many args", in: "*4\r\n", wantErr: true},
		{name: "huge bulk", in: "*1\r\n$9999999999\r\n", wantErr: true},
		{name: "bulk over limit", in: "*1\r\n$9\r\n", wantErr: true},
		{name: "negative bulk", in: "*1\r\n$-1\r\n", wantErr: true},
		{name: "missing dollar", in: "*1\r\n:1\r\n", wantErr: true},
		{name: "bad crlf", in: "*1\r\n$1\r\nab\r\n", wantErr: true},
		{name: "truncated", in: "*2\r\n$3\r\nGET\r\n", wantErr: true},
		{name: "bad count", in: "*x\r\n", wantErr: true},
		{name: "long line", in: strings.Repeat("a", 100) + "\r\n", wantErr: true},
		{name: "request too big", in: "*3\r\n$8\r\n12345678\r\n$8\r\n12345678\r\n$1\r\nx\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), small)
			args, err := r.ReadRequest()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", args)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			got := make([]string, len(args))
			for i, a := range args {
				got[i] = string(a)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPipelined(t *testing.T) {
	var in []byte
	for i := 0; i < 100; i++ {
		in = AppendRequest(in, []byte("SET"), []byte{byte(i)}, bytes.Repeat([]byte{'v'}, i))
	}
	r := NewReader(bytes.NewReader(in), DefaultLimits)
	for i := 0; i < 100; i++ {
		args, err := r.ReadRequest()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if len(args) != 3 || args[1][0] != byte(i) || len(args[2]) != i {
			t.Fatalf("request %d: got %q", i, args)
		}
	}
	if _, err := r.ReadRequest(); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want EOF", err)
	}
}

func TestWriterReply(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewWriter(bw)
	w.Array(5)
	w.Simple("OK")
	w.Error("bad\nthing")
	w.Int(-42)
	w.Bulk([]byte("a\r\nb"))
	w.Nil()
	w.Flush()
	rep, err := ReadReply(bufio.NewReader(&buf), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := `[+OK -bad thing :-42 "a\r\nb" (nil)]`
	if got := rep.String(); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// FuzzReadRequest feeds arbitrary bytes to the request parser: it must never
// panic, never return more arguments or bigger ones than the limits allow.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
	f.Add([]byte("PING\r\n"))
	f.Add([]byte("*1\r\n$-1\r\n"))
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\nab\r\n*1\r\n$4\r\nPING\r\n"))
	f.Add([]byte("*99999999999\r\n"))
	limits := Limits{MaxArgs: 8, MaxBulk: 64, MaxLine: 128}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), limits)
		for i := 0; i < 64; i++ {
			args, err := r.ReadRequest()
			if err != nil {
				return
			}
			if len(args) > limits.MaxArgs {
				t.Fatalf("got %d args, limit %d", len(args), limits.MaxArgs)
			}
			total := 0
			for _, a := range args {
				total += len(a)
				if len(a) > limits.MaxBulk && len(a) > limits.MaxLine {
					t.Fatalf("argument of %d bytes over limits", len(a))
				}
			}
			if total > limits.MaxBulk+1<<20 && total > limits.MaxLine {
				t.Fatalf("request of %d bytes over limits", total)
			}
		}
	})
}

// TestReadReplyBounds: a hostile server's replies (endless nesting, which
// overflowed the stack; arrays whose elements add up past the bound) end
// in a protocol error instead of exhausting the reader.
func TestReadReplyBounds(t *testing.T) {
	limits := Limits{MaxArgs: 16, MaxBulk: 1 << 10, MaxRequest: 4 << 10}
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"nested within the bound", strings.Repeat("*1\r\n", MaxReplyDepth) + ":1\r\n", true},
		{"nested too deep", strings.Repeat("*1\r\n", 100000), false},
		{"array too long", "*65\r\n", false},
		{"bulks past the reply bound", "*8\r\n" + strings.Repeat("$1000\r\n"+strings.Repeat("x", 1000)+"\r\n", 8), false},
		{"bulk past its bound", "$1025\r\n", false},
		{"simple strings past the reply bound", "*60\r\n" + strings.Repeat("+"+strings.Repeat("s", 100)+"\r\n", 60), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)), limits)
			if tt.ok && err != nil {
				t.Fatalf("got %v, want a reply", err)
			}
			var perr *ProtocolError
			if !tt.ok && !errors.As(err, &perr) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

// TestReadLineReply: only a simple string, an error or an integer on one
// line of at most maxLine bytes is read; anything else is refused after at
// most one line.
func TestReadLineReply(t *testing.T) {
	const maxLine = 64
	tests := []struct {
		in   string
		want string // the reply's String(), or the error's substring
		ok   bool
	}{
		{"+OK\r\n", "+OK", true},
		{":42\r\n", ":42", true},
		{"-ERR no\r\n", "-ERR no", true},
		{"$3\r\nabc\r\n", "unexpected reply", false},
		{"*67108864\r\n", "unexpected reply", false},
		{"_\r\n", "unexpected reply", false},
		{":x\r\n", "malformed integer", false},
		{"+OK\n", "malformed reply line", false},
		{"+" + strings.Repeat("a", maxLine) + "\r\n", "longer than", false},
		{"+" + strings.Repeat("a", 8*maxLine) + "\r\n", "longer than", false},
		{"+OK", "EOF", false},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 16 {
			name = name[:16]
		}
		t.Run(name, func(t *testing.T) {
			src := &countingReader{r: strings.NewReader(tt.in)}
			br := bufio.NewReaderSize(src, maxLine)
			r, err := ReadLineReply(br, maxLine)
			if tt.ok {
				if err != nil || r.String() != tt.want {
					t.Fatalf("got %v, %v, want %s", r, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, %v, want an error containing %q", r, err, tt.want)
			}
			if src.n > maxLine {
				t.Fatalf("read %d bytes, want at most %d", src.n, maxLine)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
