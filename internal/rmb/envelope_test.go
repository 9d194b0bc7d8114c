package rmb

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func sampleEnvelope(t testing.TB) *Envelope {
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	return &Envelope{
		Kind: KindRequest, Flags: FlagSealed, ID: id, Src: 7, Dst: 4000000000,
		Timestamp: time.UnixMilli(1764168000123), TTL: 1500 * time.Millisecond,
		Command: "zos.deployment.deploy", Payload: []byte("sealed bytes"),
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	k := mustKey(t)
	e := sampleEnvelope(t)
	wire, err := e.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(wire), Overhead+len(e.Command)+len(e.Payload); got != want {
		t.Errorf("got %d bytes, want %d", got, want)
	}
	d, err := Decode(wire)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d.Kind != e.Kind || d.Flags != e.Flags || d.ID != e.ID || d.Ref != e.Ref || d.Src != e.Src || d.Dst != e.Dst ||
		!d.Timestamp.Equal(e.Timestamp) || d.TTL != e.TTL || d.Command != e.Command || !bytes.Equal(d.Payload, e.Payload) {
		t.Errorf("got %+v, want %+v", d, e)
	}
	if !d.Verify(k.Public()) {
		t.Error("decoded envelope does not verify")
	}
	if d.Verify(mustKey(t).Public()) {
		t.Error("envelope verifies against another key")
	}
	// Every signed byte matters.
	for i := 0; i < len(wire)-sigSize; i++ {
		b := bytes.Clone(wire)
		b[i] ^= 0x80
		if d, err := Decode(b); err == nil && d.Verify(k.Public()) {
			t.Fatalf("flipping byte %d keeps the signature valid", i)
		}
	}
}

// TestWireLayout pins the documented layout.
func TestWireLayout(t *testing.T) {
	e := &Envelope{Kind: KindReply, Flags: 0, Src: 1, Dst: 2, Timestamp: time.UnixMilli(3), TTL: 4 * time.Millisecond,
		Command: "c", Payload: []byte("p")}
	e.ID[0], e.Ref[15] = 0xAA, 0xBB
	u := e.unsigned()
	want := []byte("ZRMB\x01\x02\x00\x00")
	want = append(want, 0xAA)
	want = append(want, make([]byte, 15)...)
	want = append(want, make([]byte, 15)...)
	want = append(want, 0xBB)
	want = append(want, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 1, 'c', 0, 0, 0, 1, 'p')
	if !bytes.Equal(u, want) {
		t.Errorf("got\n%x\nwant\n%x", u, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	k := mustKey(t)
	good, err := sampleEnvelope(t).Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", good[:Overhead-1]},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"bad version", mod(func(b []byte) []byte { b[4] = 2; return b })},
		{"bad kind", mod(func(b []byte) []byte { b[5] = 9; return b })},
		{"bad flags", mod(func(b []byte) []byte { b[6] = 0x80; return b })},
		{"reserved byte", mod(func(b []byte) []byte { b[7] = 1; return b })},
		{"command too long", mod(func(b []byte) []byte { b[60], b[61] = 0xff, 0xff; return b })},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
		{"payload length lies", mod(func(b []byte) []byte { b[fixedHeader+21+3]++; return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.data); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := (&Envelope{Command: string(make([]byte, 256))}).Sign(k); err == nil {
		t.Error("signing a 256-byte command succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	k := mustKey(f)
	good, err := sampleEnvelope(f).Sign(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("ZRMB\x01\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		_ = e.Verify(k.Public())
		// What decodes re-encodes to the same bytes.
		u := e.unsigned()
		if !bytes.Equal(append(u, e.Signature...), b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", append(u, e.Signature...), b)
		}
	})
}

func TestSealOpen(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	pa, err := x25519Private(a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := x25519Private(b)
	if err != nil {
		t.Fatal(err)
	}
	ab, err := deriveAEAD(pa, a.Public(), b.Public())
	if err != nil {
		t.Fatal(err)
	}
	ba, err := deriveAEAD(pb, b.Public(), a.Public())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := seal(ab, []byte("header"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Error("sealed payload contains the plaintext")
	}
	got, err := open(ba, []byte("header"), sealed)
	if err != nil || string(got) != "secret" {
		t.Fatalf("open: got %q, %v; want secret", got, err)
	}
	if _, err := open(ba, []byte("other header"), sealed); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("open with another header: got %v, want ErrUnauthorized", err)
	}
	c := mustKey(t)
	pc, err := x25519Private(c)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := deriveAEAD(pc, c.Public(), a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(ca, []byte("header"), sealed); err == nil {
		t.Error("a third twin opened the payload")
	}
	if _, err := open(ba, nil, []byte("short")); !errors.Is(err, ErrMalformed) {
		t.Errorf("open of a short payload: got %v, want ErrMalformed", err)
	}
	// A key that is not a curve point is refused, not a panic.
	if _, err := deriveAEAD(pa, a.Public(), make([]byte, 32)); err == nil {
		t.Error("deriving with a low-order key succeeded")
	}
}

func TestReplayCache(t *testing.T) {
	c := newReplayCache(3)
	now := time.UnixMilli(1_000_000)
	id := func(b byte) ID { return ID{b} }
	tests := []struct {
		name    string
		src     uint32
		id      ID
		expires time.Duration
		now     time.Duration
		want    replayResult
	}{
		{"first", 1, id(1), 10 * time.Second, 0, replayFresh},
		{"again", 1, id(1), 10 * time.Second, time.Second, replaySeen},
		{"same id other twin", 2, id(1), 10 * time.Second, time.Second, replayFresh},
		{"third", 1, id(2), 20 * time.Second, time.Second, replayFresh},
		{"full", 1, id(3), 20 * time.Second, time.Second, replayFull},
		{"after first two expire", 1, id(3), 20 * time.Second, 11 * time.Second, replayFresh},
		{"expired one forgotten", 1, id(1), 30 * time.Second, 11 * time.Second, replayFresh},
		{"unexpired remembered", 1, id(2), 30 * time.Second, 12 * time.Second, replaySeen},
	}
	for _, tt := range tests {
		got := c.add(tt.src, tt.id, now.Add(tt.expires), now.Add(tt.now))
		if got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
	if c.len() != 3 {
		t.Errorf("got %d entries, want 3", c.len())
	}
}
