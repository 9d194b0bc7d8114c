package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Kind is the type of a reply.
type Kind byte

// Reply kinds, named after their RESP prefix.
const (
	KindSimple Kind = '+'
	KindError  Kind = '-'
	KindInt    Kind = ':'
	KindBulk   Kind = '$'
	KindArray  Kind = '*'
)

// Reply is a decoded reply; clients (tests, tools) use it.
type Reply struct {
	Kind  Kind
	Str   []byte  // simple, error and bulk payload
	Int   int64   // integer
	Nil   bool    // null bulk or null array
	Elems []Reply // array elements
}

// String renders the reply for test messages.
func (r Reply) String() string {
	switch r.Kind {
	case KindSimple:
		return "+" + string(r.Str)
	case KindError:
		return "-" + string(r.Str)
	case KindInt:
		return ":" + strconv.FormatInt(r.Int, 10)
	case KindBulk:
		if r.Nil {
			return "(nil)"
		}
		return strconv.Quote(string(r.Str))
	case KindArray:
		return fmt.Sprint(r.Elems)
	}
	return "?"
}

// MaxReplyDepth bounds the nesting of arrays in a reply.
const MaxReplyDepth = 8

// replyElemCost is what an array element is charged against the reply's
// budget, for the Reply it takes in memory.
const replyElemCost = 64

// ReadReply decodes one reply, bounding sizes by limits: a bulk string by
// MaxBulk, an array by 4*MaxArgs elements, the nesting by MaxReplyDepth and
// the whole reply (payloads and elements) by MaxRequest (MaxBulk + 1 MiB
// when 0), so that a hostile server can exhaust neither the reader's memory
// nor its stack.
func ReadReply(br *bufio.Reader, limits Limits) (Reply, error) {
	if limits.MaxRequest <= 0 {
		limits.MaxRequest = limits.MaxBulk + 1<<20
	}
	budget := int64(limits.MaxRequest)
	return readReply(br, limits, 0, &budget)
}

func readReply(br *bufio.Reader, limits Limits, depth int, budget *int64) (Reply, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return Reply{}, fmt.Errorf("reading reply: %w", err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return Reply{}, protoErr("malformed reply line")
	}
	body := line[1 : len(line)-2]
	if *budget -= int64(len(body)); *budget < 0 {
		return Reply{}, protoErr("reply over %d bytes", limits.MaxRequest)
	}
	switch Kind(line[0]) {
	case KindSimple, KindError, KindInt:
		return lineReply(Kind(line[0]), body)
	case KindBulk:
		n, err := parseInt(body)
		if err != nil || n > int64(limits.MaxBulk) {
			return Reply{}, protoErr("bad bulk length")
		}
		if n < 0 {
			return Reply{Kind: KindBulk, Nil: true}, nil
		}
		if *budget -= n; *budget < 0 {
			return Reply{}, protoErr("reply over %d bytes", limits.MaxRequest)
		}
		p := make([]byte, n+2)
		if _, err := io.ReadFull(br, p); err != nil {
			return Reply{}, fmt.Errorf("reading bulk reply: %w", err)
		}
		return Reply{Kind: KindBulk, Str: p[:n]}, nil
	case KindArray:
		n, err := parseInt(body)
		if err != nil || n > int64(limits.MaxArgs)*4 {
			return Reply{}, protoErr("bad array length")
		}
		if n < 0 {
			return Reply{Kind: KindArray, Nil: true}, nil
		}
		if depth >= MaxReplyDepth {
			return Reply{}, protoErr("reply nested deeper than %d arrays", MaxReplyDepth)
		}
		if *budget -= n * replyElemCost; *budget < 0 {
			return Reply{}, protoErr("reply over %d bytes", limits.MaxRequest)
		}
		r := Reply{Kind: KindArray, Elems: make([]Reply, 0, n)}
		for i := int64(0); i < n; i++ {
			e, err := readReply(br, limits, depth+1, budget)
			if err != nil {
				return Reply{}, err
			}
			r.Elems = append(r.Elems, e)
		}
		return r, nil
	}
	return Reply{}, protoErr("unknown reply type %q", line[0])
}

// ReadLineReply reads a reply that must fit on one line of at most maxLine
// bytes (CRLF included): a simple string, an error or an integer, what
// commands such as AUTH and PUBLISH answer. Any other reply (a bulk
// string, an array, a RESP3 type), a longer line or one not ending in CRLF
// is a protocol error, so a hostile server costs at most one line of
// reading and no recursion. A line longer than br's buffer is refused the
// same way, so br should be at least maxLine bytes.
func ReadLineReply(br *bufio.Reader, maxLine int) (Reply, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLine {
		return Reply{}, protoErr("reply line longer than %d bytes", maxLine)
	}
	if err != nil {
		return Reply{}, fmt.Errorf("reading reply: %w", err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return Reply{}, protoErr("malformed reply line")
	}
	switch Kind(line[0]) {
	case KindSimple, KindError, KindInt:
		return lineReply(Kind(line[0]), line[1:len(line)-2])
	}
	return Reply{}, protoErr("unexpected reply of type %q on one line", line[0])
}

// lineReply decodes the body of a simple string, error or integer reply.
func lineReply(kind Kind, body []byte) (Reply, error) {
	if kind != KindInt {
		return Reply{Kind: kind, Str: append([]byte(nil), body...)}, nil
	}
	n, err := parseInt(body)
	if err != nil {
		return Reply{}, protoErr("malformed integer reply")
	}
	return Reply{Kind: KindInt, Int: n}, nil
}

// AppendRequest encodes args as a RESP array of bulk strings.
func AppendRequest(b []byte, args ...[]byte) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}
