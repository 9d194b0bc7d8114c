package dhcp

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ResolvConf renders resolv.conf for the lease: "search" with its domain,
// one "nameserver" line per server. Everything a server sent is checked
// again here (addresses are IPv4 unicast addresses, the domain a DNS name)
// so that no value can add a line of its own; a lease that fails gives
// an error and nothing to write.
func (l Lease) ResolvConf() (string, error) {
	var b strings.Builder
	if l.Domain != "" {
		if err := CheckDomain(l.Domain); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "search %s\n", l.Domain)
	}
	for _, d := range l.DNS {
		if err := checkNameServer(d); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "nameserver %s\n", d.To4())
	}
	return b.String(), nil
}

// checkNameServer accepts an IPv4 unicast address.
func checkNameServer(ip net.IP) error {
	ip4 := ip.To4()
	if ip4 == nil || ip4.IsUnspecified() || ip4.IsMulticast() || ip4.Equal(net.IPv4bcast) {
		return fmt.Errorf("name server %s is not an IPv4 unicast address", ip)
	}
	return nil
}

// CheckDomain accepts a DNS name (RFC 1123): dot-separated labels of 1 to
// 63 letters, digits and inner hyphens, 253 characters at most, one
// trailing dot allowed; nothing else (no spaces, no control characters).
func CheckDomain(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return fmt.Errorf("domain %s: not a DNS name (1 to 253 characters)", strconv.Quote(name))
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %s: label %s is not a DNS label", strconv.Quote(name), strconv.Quote(label))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("domain %s: character %s is not allowed in a DNS name", strconv.Quote(name), strconv.QuoteRune(rune(c)))
			}
		}
	}
	return nil
}
