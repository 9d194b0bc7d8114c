// Package power is the node's side of power management: whether it may go
// to standby (no workloads, no update under way) and the Wake-on-LAN magic
// packet it sends, on the farm's LAN, for a node of its farm that the grid
// wants awake. internal/node/gridsync asks it; internal/node/node wires
// the standby itself (power off in the boot image, stop when hosted).
package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Port is the port magic packets go to (discard, as wakeonlan and etherwake
// send them).
const Port = 9

// ErrBusy is a standby refused: the node has workloads or is updating.
var ErrBusy = errors.New("node busy")

// CheckStandby says whether a node with deployments active deployments,
// updating or not, may go to standby: nil, or ErrBusy with the reason.
func CheckStandby(deployments int, updating bool) error {
	switch {
	case deployments > 0 && updating:
		return fmt.Errorf("%w: %d deployments and an update under way", ErrBusy, deployments)
	case deployments > 0:
		return fmt.Errorf("%w: %d deployments", ErrBusy, deployments)
	case updating:
		return fmt.Errorf("%w: an update under way", ErrBusy)
	}
	return nil
}

// MagicPacket is the Wake-on-LAN payload for mac: six 0xff bytes, then
// the MAC sixteen times (102 bytes). Only 6-byte (EUI-48) MACs wake.
func MagicPacket(mac string) ([]byte, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, fmt.Errorf("wake-on-LAN MAC %q: %w", mac, err)
	}
	if len(hw) != 6 {
		return nil, fmt.Errorf("wake-on-LAN MAC %q: %d bytes, want 6", mac, len(hw))
	}
	if hw[0]&1 == 1 || [6]byte(hw) == [6]byte{} {
		return nil, fmt.Errorf("wake-on-LAN MAC %q: not a unicast address", mac)
	}
	p := make([]byte, 0, 6+16*6)
	for range 6 {
		p = append(p, 0xff)
	}
	for range 16 {
		p = append(p, hw...)
	}
	return p, nil
}

// IsMagicPacket reports whether p carries the magic packet of mac
// (anywhere in p, as network cards look for it in any frame).
func IsMagicPacket(p []byte, mac string) bool {
	want, err := MagicPacket(mac)
	if err != nil {
		return false
	}
	for i := 0; i+len(want) <= len(p); i++ {
		if string(p[i:i+len(want)]) == string(want) {
			return true
		}
	}
	return false
}

// Sender sends magic packets by UDP to broadcast addresses of the LAN.
type Sender struct {
	// Targets are where packets go; empty: Broadcasts() at each send.
	Targets []netip.AddrPort
}

// Broadcasts are the directed broadcast addresses, port Port, of the IPv4
// networks of the up, non-loopback, broadcast-capable interfaces here:
// the LANs a node shares with the nodes of its farm.
func Broadcasts() ([]netip.AddrPort, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var out []netip.AddrPort
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagBroadcast == 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			p, err := netip.ParsePrefix(ipn.String())
			if err != nil || p.Bits() >= 31 {
				continue
			}
			out = append(out, netip.AddrPortFrom(lastAddr(p.Masked()), Port))
		}
	}
	return out, nil
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}

// Send sends the magic packet of each MAC to every target. Every MAC is
// checked before anything is sent.
func (s Sender) Send(ctx context.Context, macs []string) error {
	if len(macs) == 0 {
		return errors.New("wake-on-LAN: no MAC")
	}
	var packets [][]byte
	for _, m := range macs {
		p, err := MagicPacket(m)
		if err != nil {
			return err
		}
		packets = append(packets, p)
	}
	targets := s.Targets
	if len(targets) == 0 {
		var err error
		if targets, err = Broadcasts(); err != nil {
			return err
		}
		if len(targets) == 0 {
			return errors.New("wake-on-LAN: no IPv4 LAN to broadcast on")
		}
	}
	var errs []error
	sent := 0
	for _, t := range targets {
		if err := sendTo(ctx, t, packets); err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
	}
	if sent == 0 {
		return errors.Join(errs...)
	}
	return nil
}

// sendTo sends packets by UDP to t (Go sets SO_BROADCAST on UDP sockets).
func sendTo(ctx context.Context, t netip.AddrPort, packets [][]byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp4", t.String())
	if err != nil {
		return fmt.Errorf("wake-on-LAN to %s: %w", t, err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, p := range packets {
		if _, err := c.Write(p); err != nil {
			return fmt.Errorf("wake-on-LAN to %s: %w", t, err)
		}
	}
	return nil
}
