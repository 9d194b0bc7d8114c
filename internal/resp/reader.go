// Package resp reads and writes the subset of the Redis serialization
// protocol (RESP2) spoken by 0-db: requests are arrays of bulk strings (or
// inline lines), replies are simple strings, errors, integers, bulk strings
// and arrays. The 0-db server (internal/node/zdb) and the flist zdb store
// (internal/flist) use it; so do the zdb tests as a small client.
package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ZDBPort is the TCP port 0-db listens on unless told otherwise: the
// node's 0-db server, and a zdb:// flist store address without a port.
const ZDBPort = 9900

// ProtocolError is a malformed request. The connection cannot be resynchronised
// after one: the server replies with Msg as an error and closes it. Where
// 0-db has a message for the fault, Msg is 0-db's, word for word.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(format string, a ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, a...)}
}

// Limits bound what one request may hold, so a connection's memory stays
// bounded whatever the client sends.
type Limits struct {
	MaxArgs    int // arguments per request, command name included
	MaxBulk    int // bytes of one argument
	MaxLine    int // bytes of an inline request or a header line
	MaxRequest int // bytes of all the arguments of a request; 0 means MaxBulk + 1 MiB
}

// DefaultLimits fit 0-db: MGET takes up to 1023 keys, values up to 8 MiB.
var DefaultLimits = Limits{MaxArgs: 1024, MaxBulk: 8 << 20, MaxLine: 64 << 10}

// Reader reads requests from a buffered stream.
type Reader struct {
	br     *bufio.Reader
	limits Limits
	buf    []byte   // arena for the arguments of the current request
	offs   []int    // start offsets of the arguments in buf
	args   [][]byte // views into buf, valid until the next ReadRequest
}

// NewReader returns a Reader over r with the given limits.
func NewReader(r io.Reader, limits Limits) *Reader {
	if limits.MaxLine <= 0 {
		limits.MaxLine = DefaultLimits.MaxLine
	}
	if limits.MaxRequest <= 0 {
		limits.MaxRequest = limits.MaxBulk + 1<<20
	}
	size := limits.MaxLine + 2 // the buffer holds a whole line
	if size < 4096 {
		size = 4096
	}
	return &Reader{br: bufio.NewReaderSize(r, size), limits: limits}
}

// Buffered reports how many bytes are already read from the stream and not
// yet consumed: more than zero means the client pipelined further requests.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadRequest returns the arguments of the next request. The slices are only
// valid until the next call. An empty inline line yields zero arguments.
func (r *Reader) ReadRequest() ([][]byte, error) {
	// Release a buffer grown by a large value so that an idle connection
	// does not keep megabytes.
	if cap(r.buf) > 1<<20 {
		r.buf = nil
	}
	r.buf = r.buf[:0]
	r.offs = r.offs[:0]
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return r.inline(line)
	}
	n, err := parseInt(line[1:])
	if err != nil {
		return nil, protoErr("Invalid arguments count")
	}
	if n <= 0 {
		// 0-db answers an empty array rather than leave the client
		// waiting for a reply that never comes.
		return nil, protoErr("Missing arguments")
	}
	if n > int64(r.limits.MaxArgs) {
		return nil, protoErr("Too many arguments")
	}
	for i := 0; i < int(n); i++ {
		line, err := r.readLine()
		if err != nil {
			return nil, noEOF(err)
		}
		if len(line) == 0 || line[0] != '$' {
			return nil, protoErr("Malformed query string")
		}
		size, err := parseInt(line[1:])
		if err != nil || size < 0 {
			return nil, protoErr("Invalid bulk length")
		}
		if size > int64(r.limits.MaxBulk) {
			return nil, protoErr("Payload too big")
		}
		if int64(len(r.buf))+size > int64(r.limits.MaxRequest) {
			return nil, protoErr("Request too big")
		}
		start := len(r.buf)
		r.offs = append(r.offs, start)
		r.buf = grow(r.buf, int(size)+2)
		if _, err := io.ReadFull(r.br, r.buf[start:start+int(size)+2]); err != nil {
			return nil, noEOF(err)
		}
		if r.buf[start+int(size)] != '\r' || r.buf[start+int(size)+1] != '\n' {
			return nil, protoErr("Malformed query string")
		}
		r.buf = r.buf[:start+int(size)]
	}
	return r.views(), nil
}

func (r *Reader) views() [][]byte {
	r.args = r.args[:0]
	for i, off := range r.offs {
		end := len(r.buf)
		if i+1 < len(r.offs) {
			end = r.offs[i+1]
		}
		r.args = append(r.args, r.buf[off:end:end])
	}
	return r.args
}

// inline splits a plain text line on spaces (telnet style).
func (r *Reader) inline(line []byte) ([][]byte, error) {
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		if len(r.offs) >= r.limits.MaxArgs {
			return nil, protoErr("too many arguments")
		}
		r.offs = append(r.offs, len(r.buf))
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			r.buf = append(r.buf, line[i])
			i++
		}
	}
	return r.views(), nil
}

// readLine returns a line without its CRLF (or LF); the slice is only valid
// until the next read.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, protoErr("line too long")
	}
	if err != nil {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line)-1 > r.limits.MaxLine {
		return nil, protoErr("line too long")
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func parseInt(b []byte) (int64, error) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, errors.New("bad integer")
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("bad integer")
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}
