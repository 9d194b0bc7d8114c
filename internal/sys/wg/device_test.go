package wg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

func TestParseModeAcceptsTheThreeModesAndRejectsOthers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", Auto, false}, {"auto", Auto, false}, {"kernel", Kernel, false}, {"userspace", Userspace, false},
		{"Kernel", Auto, true}, {"wireguard-go", Auto, true},
	} {
		got, err := ParseMode(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseMode(%q): got %q, %v, want %q, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

// fakeImpl stands for a started device in the selection logic's tests.
type fakeImpl struct{ name string }

func (fakeImpl) configure(Config) error { return nil }
func (fakeImpl) close() error           { return nil }

// TestChoosePrefersKernelAndFallsBackOnlyWhenItIsMissing: Auto takes the
// kernel device when it starts, wireguard-go when the kernel has no
// WireGuard, and returns any other kernel error without a fallback; the
// explicit modes never try the other implementation.
func TestChoosePrefersKernelAndFallsBackOnlyWhenItIsMissing(t *testing.T) {
	missing := fmt.Errorf("creating kernel wireguard x: %w: %w", ErrKernelUnsupported, unix.EOPNOTSUPP)
	busy := fmt.Errorf("creating kernel wireguard x: %w", unix.EEXIST)
	for _, c := range []struct {
		name      string
		mode      Mode
		kernelErr error
		userErr   error
		want      Mode // "" with wantErr
		wantErr   error
		fellBack  bool
		userTried bool
	}{
		{"auto, kernel works", Auto, nil, nil, Kernel, nil, false, false},
		{"auto, kernel missing", Auto, missing, nil, Userspace, nil, true, true},
		{"auto, kernel missing, userspace fails", Auto, missing, unix.ENOENT, "", unix.ENOENT, true, true},
		{"auto, kernel fails otherwise", Auto, busy, nil, "", unix.EEXIST, false, false},
		{"kernel, kernel works", Kernel, nil, nil, Kernel, nil, false, false},
		{"kernel, kernel missing", Kernel, missing, nil, "", ErrKernelUnsupported, false, false},
		{"userspace", Userspace, nil, nil, Userspace, nil, false, true},
		{"userspace fails", Userspace, nil, unix.ENOENT, "", unix.ENOENT, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			kernelTried, userTried, fellBack := false, false, false
			d, err := choose(c.mode,
				func() (impl, error) { kernelTried = true; return fakeImpl{"kernel"}, c.kernelErr },
				func() (impl, error) { userTried = true; return fakeImpl{"user"}, c.userErr },
				func(error) { fellBack = true })
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("got error %v, want %v", err, c.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if d.Kind() != c.want {
					t.Errorf("got kind %q, want %q", d.Kind(), c.want)
				}
				wantImpl := map[Mode]string{Kernel: "kernel", Userspace: "user"}[c.want]
				if got := d.impl.(fakeImpl).name; got != wantImpl {
					t.Errorf("got the %s device, want the %s one", got, wantImpl)
				}
			}
			if fellBack != c.fellBack || userTried != c.userTried {
				t.Errorf("got fallback %v, userspace tried %v, want %v, %v", fellBack, userTried, c.fellBack, c.userTried)
			}
			if kernelTried != (c.mode != Userspace) {
				t.Errorf("got kernel tried %v in mode %q", kernelTried, c.mode)
			}
		})
	}
	if _, err := choose("bogus", nil, nil, nil); err == nil {
		t.Errorf("got no error for an unknown mode")
	}
}

func TestUnsupportedOnlyForMissingKernelSupport(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{unix.EOPNOTSUPP, true}, {fmt.Errorf("adding link: %w", unix.EOPNOTSUPP), true}, {unix.ENOSYS, true},
		{unix.EEXIST, false}, {unix.EPERM, false}, {errors.New("operation not supported"), false},
	} {
		if got := unsupported(c.err); got != c.want {
			t.Errorf("unsupported(%v): got %v, want %v", c.err, got, c.want)
		}
	}
}

func TestKernelConfigCarriesKeysPortPeersAndMasksAllowedIPs(t *testing.T) {
	c := Config{PrivateKey: [32]byte{1}, ListenPort: 3000, Peers: []Peer{
		{PublicKey: [32]byte{2}, Endpoint: netip.MustParseAddrPort("10.0.0.1:3001"), Keepalive: 20,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.20.3.7/24"), netip.MustParsePrefix("fd00::1/128")}},
		{PublicKey: [32]byte{3}, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.20.4.0/24")}},
	}}
	k := kernelConfig(c)
	if *k.PrivateKey != [32]byte{1} || *k.ListenPort != 3000 || !k.ReplacePeers || len(k.Peers) != 2 {
		t.Fatalf("got %+v, want key 1, port 3000, replace peers, 2 peers", k)
	}
	p := k.Peers[0]
	if p.PublicKey != [32]byte{2} || p.Endpoint.String() != "10.0.0.1:3001" || *p.PersistentKeepaliveInterval != 20*time.Second || !p.ReplaceAllowedIPs {
		t.Errorf("got peer 0 %+v, want key 2, endpoint 10.0.0.1:3001, keepalive 20s, replace allowed IPs", p)
	}
	if len(p.AllowedIPs) != 2 || p.AllowedIPs[0].String() != "10.20.3.0/24" || p.AllowedIPs[1].String() != "fd00::1/128" {
		t.Errorf("got allowed IPs %v, want [10.20.3.0/24 fd00::1/128]", p.AllowedIPs)
	}
	if q := k.Peers[1]; q.Endpoint != nil || q.PersistentKeepaliveInterval != nil || len(q.AllowedIPs) != 1 {
		t.Errorf("got peer 1 %+v, want no endpoint, no keepalive, one allowed IP", q)
	}
}

// TestRootStartPicksKernelOrWireguardGo: on a kernel without WireGuard (the
// build host) the kernel mode fails with ErrKernelUnsupported and Start
// gives a wireguard-go device; where the kernel has it, both give kernel
// devices. Either way the device lives in the interface namespace, takes a
// configuration, listens in the socket namespace and goes away on Close.
func TestRootStartPicksKernelOrWireguardGo(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, "/dev/net/tun")
	tunNS, sockNS := fmt.Sprintf("wgt%d", os.Getpid()), fmt.Sprintf("wgs%d", os.Getpid())
	for _, ns := range []string{tunNS, sockNS} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(ns); err != nil {
				t.Errorf("deleting namespace: %v", err)
			}
		})
	}
	want := Kernel
	kd, err := StartMode(Kernel, "wgk0", tunNS, sockNS, testutil.Logger(t))
	if err != nil {
		if !errors.Is(err, ErrKernelUnsupported) {
			t.Fatalf("kernel mode: got %v, want a device or ErrKernelUnsupported", err)
		}
		want = Userspace
	} else if err := kd.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("this kernel: %s", want)

	d, err := Start("wgk1", tunNS, sockNS, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if d.Kind() != want {
		t.Errorf("got a %s device, want %s", d.Kind(), want)
	}
	if !rtnl.LinkExists(tunNS, "wgk1") || rtnl.LinkExists(sockNS, "wgk1") {
		t.Errorf("got the interface outside namespace %s", tunNS)
	}
	port := testutil.FreePort(t)
	if err := d.Configure(Config{PrivateKey: [32]byte{1}, ListenPort: uint16(port),
		Peers: []Peer{{PublicKey: [32]byte{9}, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}}}}); err != nil {
		t.Fatal(err)
	}
	// A kernel device opens its sockets when its interface goes up (the
	// network manager brings it up after Configure).
	if err := rtnl.SetUp(tunNS, "wgk1"); err != nil {
		t.Fatal(err)
	}
	// The UDP port is taken in the socket namespace, not in the other.
	for _, c := range []struct {
		ns    string
		taken bool
	}{{sockNS, true}, {tunNS, false}} {
		err := netns.Do(c.ns, func() error {
			pc, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
			if err == nil {
				pc.Close()
			}
			return err
		})
		if got := err != nil; got != c.taken {
			t.Errorf("port %d in namespace %s: got taken %v (%v), want %v", port, c.ns, got, err, c.taken)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if rtnl.LinkExists(tunNS, "wgk1") {
		t.Errorf("got the interface still there after Close")
	}
}
