package gateway

import (
	"fmt"
	"net"
	"strings"

	"golang.org/x/net/idna"
)

// Normalize returns the one spelling of a DNS name under which the gateway
// stores and compares it: IDNA ASCII (UTS 46 lookup mapping, so Unicode
// becomes punycode), lower case, without the trailing dot, every label a
// DNS label. "GW.Example.com", "gw.example.com." and "gw.example.com" are
// one name: a route, the node's domain, an SNI and a Host header are all
// normalised with it before they are compared.
func Normalize(name string) (string, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return "", fmt.Errorf("%q is not a domain name: empty", name)
	}
	a, err := idna.Lookup.ToASCII(n)
	if err != nil {
		return "", fmt.Errorf("%q is not a domain name: %w", name, err)
	}
	a = strings.ToLower(a)
	if len(a) > 253 {
		return "", fmt.Errorf("%q is not a domain name: longer than 253 characters", name)
	}
	for _, l := range strings.Split(a, ".") {
		if err := dnsLabel(l); err != nil {
			return "", fmt.Errorf("%q is not a domain name: %w", name, err)
		}
	}
	return a, nil
}

// hostName normalises a Host header or SNI for a route lookup ("" when it
// is not a name): the port is dropped.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	n, err := Normalize(host)
	if err != nil {
		return ""
	}
	return n
}

// underDomain reports whether name is domain or a name under it; both are
// normalised.
func underDomain(name, domain string) bool {
	return name == domain || strings.HasSuffix(name, "."+domain)
}

// dnsLabel checks that s is a DNS label (RFC 1123): 1 to 63 letters,
// digits and inner hyphens.
func dnsLabel(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("%q is not a DNS label (1 to 63 characters)", s)
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%q is not a DNS label (letters, digits and inner hyphens)", s)
		}
	}
	return nil
}
