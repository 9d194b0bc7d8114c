package resp

import (
	"bufio"
	"strconv"
)

// Writer writes replies into a buffered stream; the caller flushes.
type Writer struct {
	bw      *bufio.Writer
	scratch [32]byte
}

// NewWriter returns a Writer over bw.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// Flush writes the buffered replies out.
func (w *Writer) Flush() error { return w.bw.Flush() }

// Buffered is the number of bytes waiting to be flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Simple writes a status reply: +s.
func (w *Writer) Simple(s string) {
	w.bw.WriteByte('+')
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// Error writes an error reply: -s. Line breaks in s are replaced by spaces.
func (w *Writer) Error(s string) {
	w.bw.WriteByte('-')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.bw.WriteByte(c)
	}
	w.bw.WriteString("\r\n")
}

// Int writes an integer reply.
func (w *Writer) Int(n int64) {
	b := append(w.scratch[:0], ':')
	b = strconv.AppendInt(b, n, 10)
	b = append(b, '\r', '\n')
	w.bw.Write(b)
}

// Bulk writes a bulk string reply.
func (w *Writer) Bulk(p []byte) {
	w.header('$', len(p))
	w.bw.Write(p)
	w.bw.WriteString("\r\n")
}

// BulkString writes a bulk string reply from a string.
func (w *Writer) BulkString(s string) {
	w.header('$', len(s))
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// BulkHeader starts a bulk string of n bytes whose body the caller writes
// with Raw, followed by BulkEnd.
func (w *Writer) BulkHeader(n int) { w.header('$', n) }

// Raw writes bytes as they are (the body of a bulk string).
func (w *Writer) Raw(p []byte) { w.bw.Write(p) }

// BulkEnd terminates a bulk string started with BulkHeader.
func (w *Writer) BulkEnd() { w.bw.WriteString("\r\n") }

// Nil writes the null bulk string.
func (w *Writer) Nil() { w.bw.WriteString("$-1\r\n") }

// Array starts an array of n elements.
func (w *Writer) Array(n int) { w.header('*', n) }

func (w *Writer) header(kind byte, n int) {
	b := append(w.scratch[:0], kind)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '\r', '\n')
	w.bw.Write(b)
}
