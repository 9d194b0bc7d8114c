package dhcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
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

// TestResolvConfInjection: a server that puts a newline (or other
// control characters) into the domain option cannot add lines to
// resolv.conf: the option is left out and named; the rest of the lease
// stands.
func TestResolvConfInjection(t *testing.T) {
	const servers = "nameserver 10.0.2.3\nnameserver 1.1.1.1\n"
	for _, tt := range []struct {
		name, domain string
		search       string // the search line kept, "" when the option is left out
	}{
		{"plain", "example.org", "search example.org\n"},
		{"trailing dot and NUL", "example.org.\x00", "search example.org\n"},
		{"newline", "example.org\nnameserver 6.6.6.6", ""},
		{"carriage return", "example.org\roptions ndots:15", ""},
		{"two names", "a.example b.example", ""},
		{"NUL inside", "a\x00.example", ""},
		{"hyphen first", "-a.example", ""},
		{"empty label", "a..example", ""},
		{"long label", strings.Repeat("a", 64) + ".example", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := reply(Ack, 9)
			p.Options[optDomain] = []byte(tt.domain)
			q, err := Parse(p.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			l, err := leaseFrom(q)
			if err != nil {
				t.Fatalf("lease refused: %v", err)
			}
			got, err := l.ResolvConf()
			if want := tt.search + servers; err != nil || got != want {
				t.Errorf("resolv.conf: got %q (%v), want %q", got, err, want)
			}
			if ignored := len(l.Ignored) == 1; ignored != (tt.search == "") {
				t.Errorf("ignored: got %q", l.Ignored)
			}
			if l.String() != "10.0.2.15/24 via 10.0.2.2" {
				t.Errorf("lease: got %s, want it kept", l)
			}
		})
	}
}

func TestResolvConfNameServers(t *testing.T) {
	p := reply(Ack, 9)
	p.Options[optDNS] = []byte{0, 0, 0, 0, 255, 255, 255, 255, 224, 0, 0, 1, 9, 9, 9, 9}
	q, _ := Parse(p.Marshal())
	l, err := leaseFrom(q)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(l.DNS), "[9.9.9.9]"; got != want {
		t.Errorf("name servers: got %s, want %s", got, want)
	}
	if len(l.Ignored) != 3 {
		t.Errorf("ignored: got %q, want three", l.Ignored)
	}
	// A lease made by hand is checked too.
	for _, bad := range []Lease{
		{Domain: "x\nnameserver 6.6.6.6"},
		{DNS: []net.IP{net.ParseIP("2001:db8::1")}},
		{DNS: []net.IP{nil}},
	} {
		if got, err := bad.ResolvConf(); err == nil {
			t.Errorf("%+v: got %q, want an error", bad, got)
		}
	}
}

func FuzzResolvConf(f *testing.F) {
	f.Add([]byte("example.org"))
	f.Add([]byte("a\nnameserver 1.2.3.4"))
	f.Fuzz(func(t *testing.T, domain []byte) {
		p := reply(Ack, 1)
		p.Options[optDomain] = domain
		q, err := Parse(p.Marshal())
		if err != nil {
			return
		}
		l, err := leaseFrom(q)
		if err != nil {
			return
		}
		rc, err := l.ResolvConf()
		if err != nil {
			t.Fatalf("a parsed lease renders no resolv.conf: %v", err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(rc, "\n"), "\n") {
			if !strings.HasPrefix(line, "search ") && !strings.HasPrefix(line, "nameserver ") {
				t.Fatalf("resolv.conf line %q", line)
			}
			for _, c := range line {
				if c < 0x20 || c == 0x7f {
					t.Fatalf("control character in %q", line)
				}
			}
			if strings.Count(line, " ") != 1 {
				t.Fatalf("line %q has more than one field", line)
			}
		}
	})
}
