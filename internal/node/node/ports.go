package node

import (
	"net"
	"strconv"
)

// ownPorts are the TCP ports the node serves in its namespace: the 0-db
// port and the gateway's front. Tenants may connect to them (0-db
// namespaces and gateways are theirs) and no network may take one as its
// WireGuard port.
func (c *Config) ownPorts() []uint16 {
	ports := []uint16{uint16(c.ZDBPort)}
	if c.GatewayListen != "" {
		if _, p, err := net.SplitHostPort(c.GatewayListen); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil {
				ports = append(ports, uint16(n))
			}
		}
	}
	return ports
}
