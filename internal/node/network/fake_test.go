package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// fakeSystem records what the module would have done to the kernel: one
// readable line per call, in order ("[ns] ..." for a call in namespace ns,
// "[]" being the manager's own). Tests compare the whole sequence.
type fakeSystem struct {
	lines []string
	// fail makes the first call whose line starts with it fail (and every
	// later one).
	fail string
	// nft is the last ruleset loaded per table, by "[ns] family name".
	nft map[string]string
	// uplink and router are the default route of every namespace ("" and
	// an invalid address: none).
	uplink string
	router netip.Addr
	// namespaces and links are what the listings return.
	namespaces []string
	links      map[string][]string // by "[ns] prefix"
	// addrs are what Ifaces.Addrs returns, by "[ns] link".
	addrs map[string][]netip.Prefix
}

// newFakeSystem has a default route through "uplink" via 192.0.2.1.
func newFakeSystem() *fakeSystem {
	return &fakeSystem{uplink: "uplink", router: netip.MustParseAddr("192.0.2.1"), nft: map[string]string{}}
}

func (f *fakeSystem) do(format string, a ...any) error {
	l := fmt.Sprintf(format, a...)
	f.lines = append(f.lines, l)
	if f.fail != "" && strings.HasPrefix(l, f.fail) {
		return errors.New("injected failure")
	}
	return nil
}

// take returns the lines recorded so far and forgets them.
func (f *fakeSystem) take() []string {
	l := f.lines
	f.lines = nil
	return l
}

func (f *fakeSystem) system() System {
	return System{NS: fakeNS{f}, Links: fakeLinks{f}, Ifaces: fakeIfaces{f}, Routes: fakeRoutes{f},
		Sysctls: fakeSysctls{f}, Firewall: fakeFirewall{f}, WireGuard: fakeWG{f}, NDP: fakeNDP{f}}
}

// wantLines compares got with want, whole, and shows both on a mismatch.
func wantLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("%s:\ngot\n%s\nwant\n%s", what, g, w)
	}
}

type fakeNS struct{ f *fakeSystem }

func (n fakeNS) Create(name string) error { return n.f.do("netns add %s", name) }
func (n fakeNS) Delete(name string) error { return n.f.do("netns del %s", name) }
func (n fakeNS) List(prefix string) ([]string, error) {
	var out []string
	for _, ns := range n.f.namespaces {
		if strings.HasPrefix(ns, prefix) {
			out = append(out, ns)
		}
	}
	return out, n.f.do("netns list %s", prefix)
}
func (n fakeNS) Dial(_ context.Context, ns, network, addr string) (net.Conn, error) {
	return nil, n.f.do("[%s] dial %s %s", ns, network, addr)
}

type fakeLinks struct{ f *fakeSystem }

func (l fakeLinks) AddBridge(ns, name string) error { return l.f.do("[%s] bridge %s", ns, name) }
func (l fakeLinks) AddVeth(ns, name, master, peerNS, peer string) error {
	return l.f.do("[%s] veth %s master=%s peer [%s] %s", ns, name, master, peerNS, peer)
}
func (l fakeLinks) AddTap(ns, name, master string) error {
	return l.f.do("[%s] tap %s master=%s", ns, name, master)
}
func (l fakeLinks) Delete(ns, name string) error { return l.f.do("[%s] del %s", ns, name) }

type fakeIfaces struct{ f *fakeSystem }

func (i fakeIfaces) List(ns, prefix string) ([]string, error) {
	return i.f.links["["+ns+"] "+prefix], i.f.do("[%s] links %s", ns, prefix)
}
func (i fakeIfaces) Up(ns, link string) error { return i.f.do("[%s] up %s", ns, link) }
func (i fakeIfaces) AddAddr(ns, link string, p netip.Prefix) error {
	return i.f.do("[%s] addr %s %s", ns, link, p)
}

func (i fakeIfaces) Addrs(ns, link string) ([]netip.Prefix, error) {
	return i.f.addrs["["+ns+"] "+link], i.f.do("[%s] addrs %s", ns, link)
}

type fakeNDP struct{ f *fakeSystem }

func (n fakeNDP) AddProxy(ns, link string, ip netip.Addr) error {
	return n.f.do("[%s] ndp proxy %s dev %s", ns, ip, link)
}
func (n fakeNDP) DeleteProxy(ns, link string, ip netip.Addr) error {
	return n.f.do("[%s] ndp proxy del %s dev %s", ns, ip, link)
}

func (n fakeNDP) FlushProxies(ns, link string) error {
	return n.f.do("[%s] ndp proxy flush dev %s", ns, link)
}

type fakeRoutes struct{ f *fakeSystem }

func (r fakeRoutes) Default(ns string) (string, netip.Addr, error) {
	return r.f.uplink, r.f.router, r.f.do("[%s] default route", ns)
}
func (r fakeRoutes) Add(ns string, rt Route) error    { return r.f.do("[%s] route %s", ns, rt) }
func (r fakeRoutes) Delete(ns string, rt Route) error { return r.f.do("[%s] route del %s", ns, rt) }

type fakeSysctls struct{ f *fakeSystem }

func (s fakeSysctls) Set(ns, key, value string) error {
	return s.f.do("[%s] sysctl %s=%s", ns, key, value)
}
func (s fakeSysctls) DisableIPv6(ns, link string) error {
	return s.f.do("[%s] no ipv6 %s", ns, link)
}

// fakeFirewall records "nft drop inet T" for a ruleset that only removes
// table T, "nft load inet T" for one that replaces it (kept in nft), and
// refuses anything else.
type fakeFirewall struct{ f *fakeSystem }

func (w fakeFirewall) Apply(ns, ruleset string) error {
	first, _, _ := strings.Cut(ruleset, "\n")
	table, ok := strings.CutPrefix(first, "table ")
	drop := first + "\ndelete " + first + "\n"
	switch {
	case !ok:
		return fmt.Errorf("fake firewall: ruleset does not start with a table: %q", first)
	case ruleset == drop:
		delete(w.f.nft, "["+ns+"] "+table)
		return w.f.do("[%s] nft drop %s", ns, table)
	case strings.HasPrefix(ruleset, drop+first+" {\n"):
		w.f.nft["["+ns+"] "+table] = ruleset
		return w.f.do("[%s] nft load %s", ns, table)
	}
	return fmt.Errorf("fake firewall: table %s is not replaced atomically (declare, delete, define)", table)
}

type fakeWG struct{ f *fakeSystem }

func (w fakeWG) Start(name, tunNS, sockNS string) (Device, error) {
	return fakeDev{w.f, name}, w.f.do("[%s] wg %s sockets in [%s]", tunNS, name, sockNS)
}

type fakeDev struct {
	f    *fakeSystem
	name string
}

func (d fakeDev) Configure(_ [32]byte, port uint16, peers []Peer) error {
	return d.f.do("wg %s port %d peers %d", d.name, port, len(peers))
}
func (d fakeDev) Close() error { return d.f.do("wg %s close", d.name) }
