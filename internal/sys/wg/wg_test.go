package wg

import (
	"net/netip"
	"strings"
	"testing"
)

func TestUAPI(t *testing.T) {
	c := Config{PrivateKey: [32]byte{1}, ListenPort: 3000, Peers: []Peer{
		{PublicKey: [32]byte{2}, Endpoint: netip.MustParseAddrPort("10.0.0.1:3001"), Keepalive: 20,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.20.3.0/24"), netip.MustParsePrefix("100.64.20.3/32")}},
		{PublicKey: [32]byte{3}, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.20.4.0/24")}},
	}}
	z := strings.Repeat("00", 31)
	want := "private_key=01" + z + "\nlisten_port=3000\nreplace_peers=true\n" +
		"public_key=02" + z + "\nreplace_allowed_ips=true\nendpoint=10.0.0.1:3001\npersistent_keepalive_interval=20\nallowed_ip=10.20.3.0/24\nallowed_ip=100.64.20.3/32\n" +
		"public_key=03" + z + "\nreplace_allowed_ips=true\nallowed_ip=10.20.4.0/24\n"
	if got := c.UAPI(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
