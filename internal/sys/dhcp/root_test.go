package dhcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// TestRootRogueServer: a DHCP server on the link (two namespaces joined
// by a veth) answers with a domain that carries a newline and a name
// server line of its own; the client takes the lease and leaves the
// domain out: resolv.conf gets only the real name servers.
func TestRootRogueServer(t *testing.T) {
	testutil.RequireRoot(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	client, server := "zd"+id+"-c", "zd"+id+"-s"
	for _, ns := range []string{client, server} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.Delete(ns) })
	}
	if err := rtnl.AddVeth(client, "eth0", "", server, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := rtnl.AddAddr(server, "eth0", netip.MustParsePrefix("10.0.2.2/24")); err != nil {
		t.Fatal(err)
	}
	mac, err := rtnl.HardwareAddr(client, "eth0")
	if err != nil {
		t.Fatal(err)
	}

	var pc net.PacketConn
	err = netns.Do(server, func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr == nil {
					serr = unix.BindToDevice(int(fd), "eth0")
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := Parse(buf[:n])
			if err != nil || req.Op != 1 {
				continue
			}
			kind := byte(Offer)
			if req.Type() == Request {
				kind = Ack
			}
			r := reply(kind, req.XID)
			r.CHAddr = req.CHAddr
			r.Options[optDomain] = []byte("farm.example\nnameserver 6.6.6.6")
			_, _ = pc.WriteTo(r.Marshal(), &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		}
	}()

	var lease Lease
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = netns.Do(client, func() (err error) {
		lease, err = (&Client{Link: "eth0", MAC: mac, Timeout: time.Second}).Acquire(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := lease.ResolvConf()
	if want := "nameserver 10.0.2.3\nnameserver 1.1.1.1\n"; err != nil || rc != want {
		t.Errorf("resolv.conf: got %q (%v), want %q", rc, err, want)
	}
	if lease.String() != "10.0.2.15/24 via 10.0.2.2" || len(lease.Ignored) != 1 {
		t.Errorf("lease: got %s, ignored %q", lease, lease.Ignored)
	}
}
