package dhcp

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

func reply(kind byte, xid uint32) *Packet {
	return &Packet{Op: 2, XID: xid, YIAddr: net.IPv4(10, 0, 2, 15), CHAddr: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		Options: map[byte][]byte{
			optMessageType: {kind},
			optSubnetMask:  {255, 255, 255, 0},
			optRouter:      {10, 0, 2, 2},
			optDNS:         {10, 0, 2, 3, 1, 1, 1, 1},
			optServerID:    {10, 0, 2, 2},
			optLeaseTime:   binary.BigEndian.AppendUint32(nil, 86400),
			optDomain:      []byte("example"),
		}}
}

func TestRoundTripAndLease(t *testing.T) {
	b := reply(Ack, 42).Marshal()
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type() != Ack || p.XID != 42 || p.CHAddr.String() != "52:54:00:12:34:56" {
		t.Fatalf("got %+v", p)
	}
	l, err := leaseFrom(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "10.0.2.15/24 via 10.0.2.2"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if len(l.DNS) != 2 || l.DNS[1].String() != "1.1.1.1" || l.Duration != 24*time.Hour || l.Domain != "example" || l.Server.String() != "10.0.2.2" {
		t.Fatalf("lease %+v", l)
	}
}

func TestRequest(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	offer := Lease{IP: net.IPv4(10, 0, 2, 15), Server: net.IPv4(10, 0, 2, 2)}
	p := request(Request, 7, mac, "zos", &offer)
	b := p.Marshal()
	if len(b) < 300 || b[0] != 1 || binary.BigEndian.Uint16(b[10:]) != 0x8000 {
		t.Fatalf("request header %x", b[:12])
	}
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Type() != Request || !bytes.Equal(q.Options[optRequestedIP], []byte{10, 0, 2, 15}) || string(q.Options[optHostname]) != "zos" {
		t.Fatalf("got %+v", q.Options)
	}
	if !bytes.Equal(b, request(Request, 7, mac, "zos", &offer).Marshal()) {
		t.Fatal("marshal is not deterministic")
	}
}

func TestParseBad(t *testing.T) {
	good := reply(Offer, 1).Marshal()
	tests := map[string][]byte{
		"short":            good[:100],
		"no cookie":        append(append([]byte{}, good[:236]...), 0, 0, 0, 0),
		"truncated option": append(append([]byte{}, good[:240]...), optRouter, 10, 1),
	}
	for name, b := range tests {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	p := reply(Offer, 1)
	p.YIAddr = net.IPv4zero
	q, _ := Parse(p.Marshal())
	if _, err := leaseFrom(q); err == nil {
		t.Error("lease without an address accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(reply(Ack, 1).Marshal())
	f.Add(request(Discover, 2, net.HardwareAddr{1, 2, 3, 4, 5, 6}, "", nil).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		leaseFrom(p)
		p.Marshal()
	})
}
