package gridtypes

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
)

// Peer is a WireGuard peer of a network resource.
type Peer struct {
	Subnet      IPNet   `json:"subnet"`
	WGPublicKey string  `json:"wireguard_public_key"`
	AllowedIPs  []IPNet `json:"allowed_ips"`
	Endpoint    string  `json:"endpoint"`
}

func (p *Peer) challenge(c *challenger) {
	c.s(p.WGPublicKey)
	c.s(p.Endpoint)
	c.s(p.Subnet.String())
	for _, ip := range p.AllowedIPs {
		c.s(ip.String())
	}
}

func (p *Peer) valid(i int) error {
	if p.Subnet.IsZero() {
		return fmt.Errorf("peers[%d].subnet: is empty", i)
	}
	if err := validWGKey(p.WGPublicKey); err != nil {
		return fmt.Errorf("peers[%d].wireguard_public_key: %w", i, err)
	}
	if len(p.AllowedIPs) == 0 {
		return fmt.Errorf("peers[%d].allowed_ips: at least one is required", i)
	}
	if p.Endpoint != "" {
		if _, _, err := net.SplitHostPort(p.Endpoint); err != nil {
			return fmt.Errorf("peers[%d].endpoint: %q is not host:port", i, p.Endpoint)
		}
	}
	return nil
}

// validWGKey checks that s is a base64 WireGuard key (32 bytes).
func validWGKey(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("is not base64")
	}
	if len(b) != 32 {
		return fmt.Errorf("is %d bytes, want 32", len(b))
	}
	return nil
}

// Mycelium configures the mycelium overlay of a network resource.
type Mycelium struct {
	Key   Bytes    `json:"hex_key"`
	Peers []string `json:"peers"`
}

// MyceliumKeyLen is the length of a network's mycelium key.
const MyceliumKeyLen = 32

func (m *Mycelium) challenge(c *challenger) {
	c.x(m.Key)
	for _, p := range m.Peers {
		c.s(p)
	}
}

func (m *Mycelium) valid() error {
	if len(m.Key) != MyceliumKeyLen {
		return fmt.Errorf("mycelium.hex_key: must be %d bytes, got %d", MyceliumKeyLen, len(m.Key))
	}
	if len(m.Peers) != 0 {
		return fmt.Errorf("mycelium.peers: custom peers are not supported")
	}
	return nil
}

// Network is a twin's private network resource on one node.
type Network struct {
	NetworkIPRange IPNet     `json:"ip_range"`
	Subnet         IPNet     `json:"subnet"`
	WGPrivateKey   string    `json:"wireguard_private_key"`
	WGListenPort   uint16    `json:"wireguard_listen_port"`
	Peers          []Peer    `json:"peers"`
	Mycelium       *Mycelium `json:"mycelium,omitempty"`
}

func challengeNetwork(c *challenger, ipRange, subnet IPNet, key string, port uint16, peers []Peer, myc *Mycelium) {
	c.s(ipRange.String())
	c.s(subnet.String())
	c.s(key)
	c.d(uint64(port))
	for i := range peers {
		peers[i].challenge(c)
	}
	if myc != nil {
		myc.challenge(c)
	}
}

// Challenge writes range, subnet, key, port, peers and mycelium.
func (n *Network) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	challengeNetwork(c, n.NetworkIPRange, n.Subnet, n.WGPrivateKey, n.WGListenPort, n.Peers, n.Mycelium)
	return c.err
}

func validNetwork(ipRange, subnet IPNet, key string, peers []Peer) error {
	if ipRange.IsZero() {
		return fmt.Errorf("ip_range: is empty")
	}
	if ipRange.IP.To4() == nil {
		return fmt.Errorf("ip_range: %s is not IPv4", ipRange)
	}
	if ones, bits := ipRange.Mask.Size(); ones != 16 || bits != 32 {
		return fmt.Errorf("ip_range: %s must be a /16", ipRange)
	}
	if subnet.IsZero() {
		return fmt.Errorf("subnet: is empty")
	}
	if ones, bits := subnet.Mask.Size(); ones != 24 || bits != 32 {
		return fmt.Errorf("subnet: %s must be a /24", subnet)
	}
	if !ipRange.Contains(subnet.IP) {
		return fmt.Errorf("subnet: %s is not inside ip_range %s", subnet, ipRange)
	}
	if err := validWGKey(key); err != nil {
		return fmt.Errorf("wireguard_private_key: %w", err)
	}
	for i := range peers {
		if err := peers[i].valid(i); err != nil {
			return err
		}
	}
	return nil
}

// Valid checks range, subnet, key and peers.
func (n *Network) Valid(*Deployment) error {
	if err := validNetwork(n.NetworkIPRange, n.Subnet, n.WGPrivateKey, n.Peers); err != nil {
		return err
	}
	if n.Mycelium != nil {
		return n.Mycelium.valid()
	}
	return nil
}

// Capacity is zero.
func (n *Network) Capacity() (Capacity, error) { return Capacity{}, nil }

// NetworkLight is the network resource of light nodes (mycelium always).
type NetworkLight struct {
	NetworkIPRange IPNet    `json:"ip_range"`
	Subnet         IPNet    `json:"subnet"`
	WGPrivateKey   string   `json:"wireguard_private_key"`
	WGListenPort   uint16   `json:"wireguard_listen_port"`
	Peers          []Peer   `json:"peers"`
	Mycelium       Mycelium `json:"mycelium"`
}

// Challenge writes what a network's does, in the same order: range
// (`<nil>` when empty), subnet, key, port, peers, then the mycelium
// configuration (always present here). ThreeFold's code hashes it so since
// zosbase d32dcb7e (2025-09-10, v1.0.10); before, only the subnet and
// mycelium were hashed and the WireGuard fields were not signed.
func (n *NetworkLight) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	challengeNetwork(c, n.NetworkIPRange, n.Subnet, n.WGPrivateKey, n.WGListenPort, n.Peers, &n.Mycelium)
	return c.err
}

// Valid requires a subnet and a valid mycelium.
func (n *NetworkLight) Valid(*Deployment) error {
	if n.Subnet.IsZero() {
		return fmt.Errorf("subnet: is empty")
	}
	if n.WGPrivateKey != "" || !n.NetworkIPRange.IsZero() {
		if err := validNetwork(n.NetworkIPRange, n.Subnet, n.WGPrivateKey, n.Peers); err != nil {
			return err
		}
	}
	return n.Mycelium.valid()
}

// Capacity is zero.
func (n *NetworkLight) Capacity() (Capacity, error) { return Capacity{}, nil }
