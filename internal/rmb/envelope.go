package rmb

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// Kind is what an envelope carries.
type Kind uint8

// Envelope kinds.
const (
	KindRequest Kind = 1 // a command to the destination twin
	KindReply   Kind = 2 // the result of a request
	KindError   Kind = 3 // an error answering a request
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindReply:
		return "reply"
	case KindError:
		return "error"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Envelope flags.
const (
	// FlagSealed marks a payload encrypted to the destination twin:
	// nonce(24) || XChaCha20-Poly1305 ciphertext.
	FlagSealed uint8 = 1 << 0
)

// Wire format, version 1 (all integers big endian):
//
//	off  size  field
//	0    4     magic "ZRMB"
//	4    1     version (1)
//	5    1     kind (1 request, 2 reply, 3 error)
//	6    1     flags (bit 0: payload sealed)
//	7    1     reserved, 0
//	8    16    id (random per envelope)
//	24   16    ref (the request id for replies and errors, zero in requests)
//	40   4     source twin
//	44   4     destination twin
//	48   8     timestamp, unix milliseconds (signed)
//	56   4     ttl, milliseconds
//	60   2     command length C (at most MaxCommandLen), then C bytes
//	62+C 4     payload length P, then P bytes
//	..   64    ed25519 signature
//
// The signature is made by the source twin over signDomain followed by every
// byte before the signature. Sealed replies are the exception: their
// signature field is 64 zero bytes (EncodeSealedReply). The AEAD
// authenticates them already (its key is known only to the two twins, its
// associated data is the whole header, and the requester checks that the
// reply names its own fresh request id), the requester never checked a
// signature on them, and signing each one cost a third of the CPU of a
// call. Requests and plain (error) replies are always signed. The bytes before the payload length (the
// header) are the associated data of the payload's AEAD, so a ciphertext is
// bound to its id, twins, time and command. Decoding is strict: wrong
// magic, version, lengths or trailing bytes are errors.
const (
	magic         = "ZRMB"
	wireVersion   = 1
	fixedHeader   = 62 // bytes before the command
	sigSize       = 64
	signDomain    = "zos-rmb/v1 envelope\n"
	MaxCommandLen = 255
	// Overhead is the size of an envelope beyond its command and payload.
	Overhead = fixedHeader + 4 + sigSize
)

// ID identifies an envelope.
type ID [16]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is all zeros.
func (id ID) IsZero() bool { return id == ID{} }

func newID() (ID, error) {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		return ID{}, fmt.Errorf("reading random id: %w", err)
	}
	return id, nil
}

// Envelope is one relay message between two twins.
type Envelope struct {
	Kind      Kind
	Flags     uint8
	ID        ID
	Ref       ID
	Src       uint32
	Dst       uint32
	Timestamp time.Time // millisecond precision on the wire
	TTL       time.Duration
	Command   string
	Payload   []byte // sealed when Flags&FlagSealed != 0
	Signature []byte
}

// Expires returns when the envelope stops being valid.
func (e *Envelope) Expires() time.Time { return e.Timestamp.Add(e.TTL) }

// header returns the bytes before the payload length: the AEAD associated
// data. Its length does not depend on the payload.
func (e *Envelope) header() []byte {
	b := make([]byte, 0, fixedHeader+len(e.Command))
	return e.appendHeader(b)
}

func (e *Envelope) appendHeader(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, wireVersion, byte(e.Kind), e.Flags, 0)
	b = append(b, e.ID[:]...)
	b = append(b, e.Ref[:]...)
	b = binary.BigEndian.AppendUint32(b, e.Src)
	b = binary.BigEndian.AppendUint32(b, e.Dst)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp.UnixMilli()))
	b = binary.BigEndian.AppendUint32(b, uint32(e.TTL/time.Millisecond))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Command)))
	b = append(b, e.Command...)
	return b
}

// unsigned returns the encoding of every field but the signature.
func (e *Envelope) unsigned() []byte {
	b := make([]byte, 0, fixedHeader+len(e.Command)+4+len(e.Payload)+sigSize)
	b = e.appendHeader(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	return append(b, e.Payload...)
}

func (e *Envelope) check() error {
	if len(e.Command) > MaxCommandLen {
		return fmt.Errorf("command is %d bytes, at most %d", len(e.Command), MaxCommandLen)
	}
	if e.TTL < 0 || e.TTL/time.Millisecond > 1<<32-1 {
		return fmt.Errorf("ttl %s out of range", e.TTL)
	}
	if uint64(len(e.Payload)) > 1<<32-1 {
		return fmt.Errorf("payload of %d bytes out of range", len(e.Payload))
	}
	return nil
}

// signedBytes returns what the signature covers.
func signedBytes(unsigned []byte) []byte {
	m := make([]byte, 0, len(signDomain)+len(unsigned))
	m = append(m, signDomain...)
	return append(m, unsigned...)
}

// Sign signs the envelope with key and returns its wire encoding.
func (e *Envelope) Sign(key identity.Key) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	u := e.unsigned()
	e.Signature = key.Sign(signedBytes(u))
	return append(u, e.Signature...), nil
}

// EncodeSealedReply returns the wire encoding of a sealed reply or error
// with a zero signature: the AEAD authenticates it (see the wire format).
// Anything else must be signed.
func (e *Envelope) EncodeSealedReply() ([]byte, error) {
	if e.Kind == KindRequest || e.Flags&FlagSealed == 0 {
		return nil, fmt.Errorf("%s envelope with flags %#x must be signed", e.Kind, e.Flags)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	e.Signature = make([]byte, sigSize)
	return append(e.unsigned(), e.Signature...), nil
}

// Verify checks the envelope's signature against the source twin's key.
func (e *Envelope) Verify(pub []byte) bool {
	if e.check() != nil {
		return false
	}
	return identity.Verify(pub, signedBytes(e.unsigned()), e.Signature)
}

// Decode parses the wire encoding of an envelope. It checks the shape only:
// the signature, times and destination are the receiver's to check.
func Decode(b []byte) (*Envelope, error) {
	if len(b) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the minimum %d", ErrMalformed, len(b), Overhead)
	}
	if string(b[0:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformed, b[0:4])
	}
	if b[4] != wireVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[4], wireVersion)
	}
	e := &Envelope{Kind: Kind(b[5]), Flags: b[6]}
	if e.Kind < KindRequest || e.Kind > KindError {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, b[5])
	}
	if e.Flags&^FlagSealed != 0 || b[7] != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x %#x", ErrMalformed, b[6], b[7])
	}
	copy(e.ID[:], b[8:24])
	copy(e.Ref[:], b[24:40])
	e.Src = binary.BigEndian.Uint32(b[40:44])
	e.Dst = binary.BigEndian.Uint32(b[44:48])
	e.Timestamp = time.UnixMilli(int64(binary.BigEndian.Uint64(b[48:56])))
	e.TTL = time.Duration(binary.BigEndian.Uint32(b[56:60])) * time.Millisecond
	cl := int(binary.BigEndian.Uint16(b[60:62]))
	if cl > MaxCommandLen {
		return nil, fmt.Errorf("%w: command is %d bytes, at most %d", ErrMalformed, cl, MaxCommandLen)
	}
	rest := b[fixedHeader:]
	if len(rest) < cl+4+sigSize {
		return nil, fmt.Errorf("%w: truncated command", ErrMalformed)
	}
	e.Command = string(rest[:cl])
	rest = rest[cl:]
	pl := uint64(binary.BigEndian.Uint32(rest[:4]))
	rest = rest[4:]
	if uint64(len(rest)) != pl+sigSize {
		return nil, fmt.Errorf("%w: payload length %d does not match the %d bytes left", ErrMalformed, pl, len(rest))
	}
	e.Payload = rest[:pl:pl]
	e.Signature = rest[pl:]
	return e, nil
}
