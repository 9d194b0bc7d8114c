package power

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMagicPacket: the payload is 6×0xff then the MAC 16 times; bad MACs
// are refused.
func TestMagicPacket(t *testing.T) {
	p, err := MagicPacket("52:54:00:12:34:56")
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 102 {
		t.Fatalf("got %d bytes, want 102", len(p))
	}
	if !bytes.Equal(p[:6], bytes.Repeat([]byte{0xff}, 6)) {
		t.Errorf("got header % x, want ff ×6", p[:6])
	}
	mac := []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	for i := range 16 {
		if got := p[6+6*i : 12+6*i]; !bytes.Equal(got, mac) {
			t.Fatalf("repetition %d: got % x, want % x", i, got, mac)
		}
	}
	if !IsMagicPacket(append([]byte("frame head"), p...), "52-54-00-12-34-56") {
		t.Error("IsMagicPacket misses the packet inside a frame")
	}
	if IsMagicPacket(p, "52:54:00:12:34:57") {
		t.Error("IsMagicPacket matches another MAC")
	}
	for _, bad := range []string{"", "nope", "52:54:00:12:34", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
		"ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00"} {
		if _, err := MagicPacket(bad); err == nil {
			t.Errorf("MagicPacket(%q): got no error, want one", bad)
		}
	}
}

// TestCheckStandby: standby only without workloads and without an update.
func TestCheckStandby(t *testing.T) {
	tests := []struct {
		deps     int
		updating bool
		want     string
	}{
		{0, false, ""},
		{2, false, "node busy: 2 deployments"},
		{0, true, "node busy: an update under way"},
		{1, true, "node busy: 1 deployments and an update under way"},
	}
	for _, tt := range tests {
		err := CheckStandby(tt.deps, tt.updating)
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrBusy) {
				t.Errorf("CheckStandby(%d, %v): got %v, want ErrBusy", tt.deps, tt.updating, err)
			}
		}
		if got != tt.want {
			t.Errorf("CheckStandby(%d, %v): got %q, want %q", tt.deps, tt.updating, got, tt.want)
		}
	}
}

// TestLastAddr: the directed broadcast of a prefix.
func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{"10.0.2.0/24": "10.0.2.255", "192.168.0.0/23": "192.168.1.255", "10.0.0.0/8": "10.255.255.255"} {
		if got := lastAddr(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("lastAddr(%s): got %s, want %s", in, got, want)
		}
	}
}

// TestSendReachesListener: Send delivers each MAC's packet to a UDP
// listener; a bad MAC sends nothing at all.
func TestSendReachesListener(t *testing.T) {
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := Sender{Targets: []netip.AddrPort{l.LocalAddr().(*net.UDPAddr).AddrPort()}}
	ctx := context.Background()
	if err := s.Send(ctx, []string{"52:54:00:aa:bb:cc", "bad"}); err == nil {
		t.Fatal("Send with a bad MAC: got no error")
	}
	if err := s.Send(ctx, []string{"52:54:00:aa:bb:cc"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := l.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	// The first datagram is the good send's: the bad one sent nothing.
	if !IsMagicPacket(buf[:n], "52:54:00:aa:bb:cc") || n != 102 {
		t.Fatalf("got %d bytes % x, want the magic packet of 52:54:00:aa:bb:cc", n, buf[:n])
	}
	if err := (Sender{Targets: s.Targets}).Send(ctx, nil); err == nil {
		t.Error("Send without MACs: got no error")
	}
}

// TestPhysicalNICs: only interfaces with a device and a unicast MAC.
func TestPhysicalNICs(t *testing.T) {
	root := t.TempDir()
	mk := func(name, mac string, device bool) {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "address"), []byte(mac+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if device {
			if err := os.Mkdir(filepath.Join(dir, "device"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("eth1", "52:54:00:00:00:02", true)
	mk("eth0", "52:54:00:00:00:01", true)
	mk("zos", "52:54:00:00:00:03", false) // a bridge
	mk("lo", "00:00:00:00:00:00", false)
	mk("ib0", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", true)
	got := PhysicalNICs(root)
	want := []NIC{{"eth0", "52:54:00:00:00:01"}, {"eth1", "52:54:00:00:00:02"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := PhysicalNICs(filepath.Join(root, "missing")); got != nil {
		t.Fatalf("missing sysfs: got %v, want none", got)
	}
}
