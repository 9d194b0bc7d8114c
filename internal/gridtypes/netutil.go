package gridtypes

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
)

// IPNet is an address with its prefix ("10.20.0.0/16"); JSON as a string,
// "" for the zero value.
type IPNet struct {
	net.IPNet
}

// ParseIPNet parses a CIDR, keeping the address as written (not masked).
func ParseIPNet(s string) (IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return IPNet{}, fmt.Errorf("invalid CIDR %q", s)
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return IPNet{net.IPNet{IP: ip, Mask: n.Mask}}, nil
}

// MustParseIPNet is ParseIPNet for constants in tests; it panics on error.
func MustParseIPNet(s string) IPNet {
	n, err := ParseIPNet(s)
	if err != nil {
		panic(err)
	}
	return n
}

// IsZero reports whether the net is unset.
func (n IPNet) IsZero() bool { return len(n.IP) == 0 }

// String is net.IPNet's String ("<nil>" when unset, as the original hashes).
func (n IPNet) String() string { return n.IPNet.String() }

// MarshalJSON writes the CIDR string, or "" when unset.
func (n IPNet) MarshalJSON() ([]byte, error) {
	if n.IsZero() {
		return []byte(`""`), nil
	}
	return json.Marshal(n.String())
}

// UnmarshalJSON reads a CIDR string.
func (n *IPNet) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("CIDR must be a string: %w", err)
	}
	if s == "" {
		*n = IPNet{}
		return nil
	}
	v, err := ParseIPNet(s)
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// Bytes is a byte string written in JSON as hex.
type Bytes []byte

// MarshalJSON writes hex.
func (b Bytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(b)) }

// UnmarshalJSON reads hex.
func (b *Bytes) UnmarshalJSON(in []byte) error {
	var s string
	if err := json.Unmarshal(in, &s); err != nil {
		return fmt.Errorf("hex bytes must be a string: %w", err)
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("invalid hex %q", s)
	}
	*b = v
	return nil
}
