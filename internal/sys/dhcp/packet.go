// Package dhcp is a small DHCPv4 client (RFC 2131): DISCOVER, OFFER,
// REQUEST, ACK over a UDP socket bound to one link, with the broadcast
// flag set so that replies reach a link that has no address yet. zos init
// uses it for the NIC with a link; netcfg applies the lease.
package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Message types (option 53).
const (
	Discover = 1
	Offer    = 2
	Request  = 3
	Decline  = 4
	Ack      = 5
	Nak      = 6
	Release  = 7
)

// Options used.
const (
	optSubnetMask   = 1
	optRouter       = 3
	optDNS          = 6
	optHostname     = 12
	optDomain       = 15
	optRequestedIP  = 50
	optLeaseTime    = 51
	optMessageType  = 53
	optServerID     = 54
	optParamRequest = 55
	optClientID     = 61
	optEnd          = 255
	optPad          = 0
)

var magicCookie = []byte{99, 130, 83, 99}

// Packet is a BOOTP/DHCP message.
type Packet struct {
	Op      byte // 1 request, 2 reply
	XID     uint32
	Flags   uint16
	CIAddr  net.IP
	YIAddr  net.IP
	SIAddr  net.IP
	CHAddr  net.HardwareAddr
	Options map[byte][]byte
}

// Type is the DHCP message type, or 0.
func (p *Packet) Type() byte {
	if v := p.Options[optMessageType]; len(v) == 1 {
		return v[0]
	}
	return 0
}

// ErrMalformed reports a packet that is not a DHCP message.
var ErrMalformed = errors.New("malformed DHCP packet")

// Marshal encodes the packet (options in ascending order, deterministic).
func (p *Packet) Marshal() []byte {
	b := make([]byte, 240, 300)
	b[0] = p.Op
	b[1] = 1 // ethernet
	b[2] = 6
	binary.BigEndian.PutUint32(b[4:], p.XID)
	binary.BigEndian.PutUint16(b[10:], p.Flags)
	copy(b[12:16], p.CIAddr.To4())
	copy(b[16:20], p.YIAddr.To4())
	copy(b[20:24], p.SIAddr.To4())
	copy(b[28:44], p.CHAddr)
	copy(b[236:240], magicCookie)
	for code := 1; code < 255; code++ {
		v, ok := p.Options[byte(code)]
		if !ok {
			continue
		}
		for len(v) > 255 {
			b = append(b, byte(code), 255)
			b = append(b, v[:255]...)
			v = v[255:]
		}
		b = append(b, byte(code), byte(len(v)))
		b = append(b, v...)
	}
	b = append(b, optEnd)
	for len(b) < 300 {
		b = append(b, optPad)
	}
	return b
}

// Parse decodes a packet; it never panics on bad input.
func Parse(b []byte) (*Packet, error) {
	if len(b) < 240 {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if string(b[236:240]) != string(magicCookie) {
		return nil, fmt.Errorf("%w: no magic cookie", ErrMalformed)
	}
	hlen := int(b[2])
	if hlen > 16 {
		return nil, fmt.Errorf("%w: hardware address length %d", ErrMalformed, hlen)
	}
	p := &Packet{
		Op: b[0], XID: binary.BigEndian.Uint32(b[4:]), Flags: binary.BigEndian.Uint16(b[10:]),
		CIAddr: net.IP(append([]byte(nil), b[12:16]...)), YIAddr: net.IP(append([]byte(nil), b[16:20]...)),
		SIAddr: net.IP(append([]byte(nil), b[20:24]...)), CHAddr: net.HardwareAddr(append([]byte(nil), b[28:28+hlen]...)),
		Options: map[byte][]byte{},
	}
	opts := b[240:]
	for i := 0; i < len(opts); {
		code := opts[i]
		if code == optEnd {
			break
		}
		if code == optPad {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return nil, fmt.Errorf("%w: option %d truncated", ErrMalformed, code)
		}
		n := int(opts[i+1])
		if i+2+n > len(opts) {
			return nil, fmt.Errorf("%w: option %d length %d past the end", ErrMalformed, code, n)
		}
		p.Options[code] = append(p.Options[code], opts[i+2:i+2+n]...)
		i += 2 + n
	}
	return p, nil
}

// Lease is what the server gave. Name servers and the domain are only
// those that may go into resolv.conf (see ResolvConf); the others are
// named in Ignored.
type Lease struct {
	IP       net.IP
	Mask     net.IPMask
	Router   net.IP
	DNS      []net.IP
	Domain   string
	Server   net.IP
	Duration time.Duration
	// Ignored describes the options left out as invalid, for the log.
	Ignored []string
}

// String is "10.0.2.15/24 via 10.0.2.2".
func (l Lease) String() string {
	ones, _ := l.Mask.Size()
	s := fmt.Sprintf("%s/%d", l.IP, ones)
	if l.Router != nil {
		s += " via " + l.Router.String()
	}
	return s
}

// leaseFrom reads a lease from an ACK (or OFFER).
func leaseFrom(p *Packet) (Lease, error) {
	l := Lease{IP: p.YIAddr.To4(), Duration: time.Hour}
	if l.IP == nil || l.IP.IsUnspecified() {
		return l, fmt.Errorf("%w: no address offered", ErrMalformed)
	}
	if m := p.Options[optSubnetMask]; len(m) == 4 {
		l.Mask = net.IPMask(append([]byte(nil), m...))
	} else {
		l.Mask = l.IP.DefaultMask()
	}
	if r := p.Options[optRouter]; len(r) >= 4 {
		l.Router = net.IP(append([]byte(nil), r[:4]...))
	}
	for d := p.Options[optDNS]; len(d) >= 4; d = d[4:] {
		ip := net.IP(append([]byte(nil), d[:4]...))
		if err := checkNameServer(ip); err != nil {
			l.Ignored = append(l.Ignored, fmt.Sprintf("option %d: %v", optDNS, err))
			continue
		}
		l.DNS = append(l.DNS, ip)
	}
	if s := p.Options[optServerID]; len(s) == 4 {
		l.Server = net.IP(append([]byte(nil), s...))
	}
	if t := p.Options[optLeaseTime]; len(t) == 4 {
		if secs := binary.BigEndian.Uint32(t); secs > 0 {
			l.Duration = time.Duration(secs) * time.Second
		}
	}
	if d, ok := p.Options[optDomain]; ok {
		// Some servers count a terminating NUL in the option.
		name := strings.TrimRight(string(d), "\x00")
		if err := CheckDomain(name); err != nil {
			l.Ignored = append(l.Ignored, fmt.Sprintf("option %d: %v", optDomain, err))
		} else {
			l.Domain = strings.TrimSuffix(name, ".")
		}
	}
	return l, nil
}

// request builds a DISCOVER or REQUEST from a client.
func request(kind byte, xid uint32, mac net.HardwareAddr, hostname string, offer *Lease) *Packet {
	p := &Packet{Op: 1, XID: xid, Flags: 0x8000, CHAddr: mac, Options: map[byte][]byte{
		optMessageType:  {kind},
		optParamRequest: {optSubnetMask, optRouter, optDNS, optDomain, optLeaseTime},
		optClientID:     append([]byte{1}, mac...),
	}}
	if hostname != "" {
		p.Options[optHostname] = []byte(hostname)
	}
	if offer != nil {
		p.Options[optRequestedIP] = offer.IP.To4()
		if offer.Server != nil {
			p.Options[optServerID] = offer.Server.To4()
		}
	}
	return p
}
