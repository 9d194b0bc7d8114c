package planetary

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// packet builds an IPv6/UDP packet (checksum left zero: the overlay carries
// packets, it does not inspect transport headers).
func packet(src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 48+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	b[6] = 17 // UDP
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	binary.BigEndian.PutUint16(b[40:], 4000)
	binary.BigEndian.PutUint16(b[42:], 4000)
	binary.BigEndian.PutUint16(b[44:], uint16(8+len(payload)))
	copy(b[48:], payload)
	return b
}

type received struct {
	src, dst netip.Addr
	payload  []byte
}

// receive reads packets from o until it is closed.
func receive(t *testing.T, o *Overlay) <-chan received {
	ch := make(chan received, 1024)
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := o.Packets().Read(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			src, _ := netip.AddrFromSlice(buf[8:24])
			dst, _ := netip.AddrFromSlice(buf[24:40])
			ch <- received{src: src, dst: dst, payload: bytes.Clone(buf[48:n])}
		}
	}()
	return ch
}

func start(t *testing.T, cfg Config) *Overlay {
	t.Helper()
	o, err := Start(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// pair starts a "public peer" listening on loopback and a node peering with
// it, and waits until the link is up on both sides.
func pair(t *testing.T) (public, node *Overlay) {
	t.Helper()
	port := testutil.FreePort(t)
	public = start(t, Config{DataDir: t.TempDir(), Listen: []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}})
	node = start(t, Config{DataDir: t.TempDir(), Peers: []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}})
	if err := testutil.Poll(10*time.Second, func() (bool, error) {
		return public.Connected() && node.Connected(), nil
	}); err != nil {
		t.Fatalf("peering never came up: node peers %+v, public peers %+v", node.Peers(), public.Peers())
	}
	return public, node
}

func TestKeyIsPersistedSoTheAddressSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	o, err := Start(Config{DataDir: dir}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, subnet := o.Address(), o.Subnet()
	_ = o.Close()
	if !netip.MustParsePrefix("200::/8").Contains(addr) {
		t.Errorf("got address %s, want one in 200::/8", addr)
	}
	if subnet.Bits() != 64 || !netip.MustParsePrefix("300::/8").Contains(subnet.Addr()) {
		t.Errorf("got subnet %s, want a /64 in 300::/8", subnet)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got key mode %v, want 0600", fi.Mode().Perm())
	}
	again := start(t, Config{DataDir: dir})
	if again.Address() != addr || again.Subnet() != subnet {
		t.Errorf("after restart got %s %s, want %s %s", again.Address(), again.Subnet(), addr, subnet)
	}
	// the node knows them from the key file alone (for its VMs' addresses
	// while the overlay is down)
	key, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a, s := Addresses(key); a != addr || s != subnet {
		t.Errorf("Addresses of the key: got %s %s, want %s %s", a, s, addr, subnet)
	}
}

func TestCorruptKeyIsAnErrorAndTheFileIsKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	junk := []byte("not a key\n")
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Config{DataDir: dir}, testutil.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "not a PEM private key") {
		t.Fatalf("got error %v, want a corrupt-key error", err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, junk) {
		t.Errorf("key file was changed to %q", got)
	}
}

func TestBadPeerURIsAreRefusedAtStart(t *testing.T) {
	for _, tc := range []struct {
		peer, want string
	}{
		{"127.0.0.1:9651", "first path segment"},
		{"peer.example:9651", "scheme"},
		{"udp://1.2.3.4:9651", "scheme"},
		{"tcp://1.2.3.4", "host:port"},
		{"tcp://:9651", "host:port"},
		{"tls://[::1", "missing ']'"},
	} {
		err := Config{DataDir: t.TempDir(), Peers: []string{tc.peer}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("peer %q: got error %v, want one containing %q", tc.peer, err, tc.want)
		}
	}
	if err := (Config{DataDir: t.TempDir(), Peers: []string{"tcp://[2001:db8::1]:9651", "tls://peer.example:443", "quic://1.2.3.4:1"}}).Validate(); err != nil {
		t.Errorf("good peers: got %v, want nil", err)
	}
	if err := (Config{Peers: nil}).Validate(); err == nil {
		t.Error("no data dir: got nil error")
	}
}

// A node peered with a public peer carries packets both to the node's own
// address and to addresses of its /64 (where VMs and zdb namespaces live),
// and the round trip is measured against a plain loopback UDP round trip.
func TestNodePeersWithPublicPeerAndCarriesPacketsToAddressAndSubnet(t *testing.T) {
	public, node := pair(t)
	pubRx, nodeRx := receive(t, public), receive(t, node)

	vm := node.Subnet().Addr().Next() // first address of the node's /64, as a VM would get
	for _, dst := range []netip.Addr{node.Address(), vm} {
		want := []byte("hello " + dst.String())
		if err := testutil.Poll(10*time.Second, func() (bool, error) {
			// the first packets to a new key may be lost while its path is looked up
			if _, err := public.Packets().Write(packet(public.Address(), dst, want)); err != nil {
				return false, err
			}
			select {
			case r := <-nodeRx:
				if r.dst != dst || r.src != public.Address() || !bytes.Equal(r.payload, want) {
					return false, fmt.Errorf("got %s->%s %q, want %s->%s %q", r.src, r.dst, r.payload, public.Address(), dst, want)
				}
				return true, nil
			case <-time.After(200 * time.Millisecond):
				return false, nil
			}
		}); err != nil {
			t.Fatalf("public peer -> %s: %v", dst, err)
		}
	}

	// and back, from the VM address to the public peer
	if _, err := node.Packets().Write(packet(vm, public.Address(), []byte("reply"))); err != nil {
		t.Fatalf("write from the node's subnet: %v", err)
	}
	select {
	case r := <-pubRx:
		if r.src != vm || string(r.payload) != "reply" {
			t.Errorf("got %s %q, want %s %q", r.src, r.payload, vm, "reply")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reply from the node's subnet never arrived")
	}

	overlay := rtt(t, 200, func() {
		_, _ = public.Packets().Write(packet(public.Address(), node.Address(), []byte("ping")))
		<-nodeRx
		_, _ = node.Packets().Write(packet(node.Address(), public.Address(), []byte("pong")))
		<-pubRx
	})
	underlay := udpRTT(t, 200)
	t.Logf("figure: round trip over the overlay %v, over loopback UDP %v (ratio %.1f)", overlay, underlay, float64(overlay)/float64(underlay))
}

func rtt(t *testing.T, n int, once func()) time.Duration {
	t.Helper()
	start := time.Now()
	for range n {
		once()
	}
	return time.Since(start) / time.Duration(n)
}

func udpRTT(t *testing.T, n int) time.Duration {
	t.Helper()
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buf := make([]byte, 64)
	return rtt(t, n, func() {
		_, _ = a.WriteTo([]byte("ping"), b.LocalAddr())
		_, from, _ := b.ReadFrom(buf)
		_, _ = b.WriteTo([]byte("pong"), from)
		_, _, _ = a.ReadFrom(buf)
	})
}

// A node cannot send with a source outside its own address and /64: a VM
// spoofing another node's subnet is refused before it reaches the overlay.
func TestSpoofedOverlaySourceIsDropped(t *testing.T) {
	public, node := pair(t)
	pubRx := receive(t, public)
	_ = receive(t, node)                     // an overlay whose packets nobody reads stalls its lookups
	spoofed := public.Subnet().Addr().Next() // an address that belongs to someone else
	if _, err := node.Packets().Write(packet(spoofed, public.Address(), []byte("spoofed"))); err == nil {
		t.Error("spoofed source: got nil error, want a refusal")
	}
	outside := netip.MustParseAddr("2001:db8::1")
	if _, err := node.Packets().Write(packet(outside, public.Address(), []byte("outside"))); err == nil {
		t.Error("non-overlay source: got nil error, want a refusal")
	}
	// the next legitimate packet is the first one the public peer sees
	if err := testutil.Poll(10*time.Second, func() (bool, error) {
		if _, err := node.Packets().Write(packet(node.Address(), public.Address(), []byte("legit"))); err != nil {
			return false, err
		}
		select {
		case r := <-pubRx:
			if string(r.payload) != "legit" {
				return false, fmt.Errorf("got %q from %s, want only the legitimate packet", r.payload, r.src)
			}
			return true, nil
		case <-time.After(200 * time.Millisecond):
			return false, nil
		}
	}); err != nil {
		t.Fatal(err)
	}
}

// A peer nobody answers on does not stop the node: Start succeeds, the peer
// is reported down (the library reports no dial error), and Connected says
// so.
func TestDeadPeerIsReportedDownAndStartStillSucceeds(t *testing.T) {
	port := testutil.FreePort(t)
	o := start(t, Config{DataDir: t.TempDir(), Peers: []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}})
	if err := testutil.Poll(10*time.Second, func() (bool, error) {
		ps := o.Peers()
		return len(ps) == 1 && !ps[0].Up && ps[0].URI == fmt.Sprintf("tcp://127.0.0.1:%d", port), nil
	}); err != nil {
		t.Fatalf("got peers %+v, want the one configured peer, down", o.Peers())
	}
	if o.Connected() {
		t.Error("Connected: got true with a dead peer")
	}
}
