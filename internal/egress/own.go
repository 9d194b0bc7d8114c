package egress

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// InterfaceAddrs returns an Own function for a Policy: the addresses of the
// network interfaces of the caller's network namespace, listed again when
// the last list is older than ttl (addresses come and go with DHCP), so a
// check answers from memory most of the time. A failed listing keeps the
// previous list. Loopback addresses are left out: they are refused as
// loopback, unless an Allow (a test hub on 127.0.0.1) lets them through,
// which Own, checked first, would otherwise overrule.
func InterfaceAddrs(ttl time.Duration) func() []netip.Addr {
	var (
		mu    sync.Mutex // guards addrs and at
		addrs []netip.Addr
		at    time.Time
	)
	return func() []netip.Addr {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < ttl {
			return addrs
		}
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			return addrs
		}
		out := make([]netip.Addr, 0, len(ifaddrs))
		for _, a := range ifaddrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() {
				out = append(out, p.Addr().Unmap())
			}
		}
		addrs, at = out, time.Now()
		return addrs
	}
}
