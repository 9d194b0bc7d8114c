package dhcp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNak is returned when the server refuses the requested address.
var ErrNak = errors.New("DHCP server sent NAK")

// Client gets leases for one link.
type Client struct {
	// Link is the interface name; MAC its hardware address.
	Link string
	MAC  net.HardwareAddr
	// Hostname is sent to the server (option 12).
	Hostname string
	// Timeout bounds one exchange attempt (default 3 s).
	Timeout time.Duration
}

// Acquire runs DISCOVER/OFFER/REQUEST/ACK once (with a few resends) and
// returns the lease.
func (c *Client) Acquire(ctx context.Context) (Lease, error) {
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Second
	}
	conn, err := c.listen(ctx)
	if err != nil {
		return Lease{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	var xb [4]byte
	if _, err := rand.Read(xb[:]); err != nil {
		return Lease{}, err
	}
	xid := binary.BigEndian.Uint32(xb[:])
	offer, err := c.exchange(ctx, conn, request(Discover, xid, c.MAC, c.Hostname, nil), Offer)
	if err != nil {
		return Lease{}, fmt.Errorf("waiting for an offer on %s: %w", c.Link, err)
	}
	ol, err := leaseFrom(offer)
	if err != nil {
		return Lease{}, err
	}
	ack, err := c.exchange(ctx, conn, request(Request, xid, c.MAC, c.Hostname, &ol), Ack)
	if err != nil {
		return Lease{}, fmt.Errorf("requesting %s on %s: %w", ol.IP, c.Link, err)
	}
	return leaseFrom(ack)
}

// exchange broadcasts req until a reply of type want with the same xid
// arrives (three sends, Timeout each).
func (c *Client) exchange(ctx context.Context, conn *net.UDPConn, req *Packet, want byte) (*Packet, error) {
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := conn.WriteToUDP(req.Marshal(), dst); err != nil {
			return nil, fmt.Errorf("sending: %w", err)
		}
		deadline := time.Now().Add(c.Timeout)
		conn.SetReadDeadline(deadline)
		for {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, fmt.Errorf("receiving: %w", err)
			}
			p, err := Parse(buf[:n])
			if err != nil || p.Op != 2 || p.XID != req.XID {
				continue
			}
			switch p.Type() {
			case want:
				return p, nil
			case Nak:
				return nil, ErrNak
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, errors.New("no answer")
}

// listen opens UDP port 68 on the link, with broadcast allowed.
func (c *Client) listen(ctx context.Context) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), c.Link)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:68")
	if err != nil {
		return nil, fmt.Errorf("opening the DHCP socket on %s: %w", c.Link, err)
	}
	return pc.(*net.UDPConn), nil
}
