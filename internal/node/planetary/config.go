package planetary

import (
	"errors"
	"fmt"
	"net/url"
)

// Config is the node's planetary (yggdrasil) configuration.
type Config struct {
	// DataDir holds the persisted key (KeyFile).
	DataDir string
	// Peers are the public peers the grid configuration lists, as yggdrasil
	// URIs (tcp://host:port, tls://host:port, quic://host:port).
	Peers []string
	// Listen are optional listen URIs; a node normally only dials out.
	Listen []string
	// AllowPorts are the TCP ports of the node the overlay may open
	// connections to (the tenant services); see Ruleset.
	AllowPorts []uint16
}

var schemes = map[string]bool{"tcp": true, "tls": true, "quic": true, "ws": true, "wss": true}

// Validate checks every URI so a typo is a clear error at start, not a
// peer that silently never comes up.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("planetary: data dir is required")
	}
	for _, p := range c.Peers {
		if err := checkURI(p); err != nil {
			return fmt.Errorf("planetary peer %q: %w", p, err)
		}
	}
	for _, l := range c.Listen {
		if err := checkURI(l); err != nil {
			return fmt.Errorf("planetary listen %q: %w", l, err)
		}
	}
	return nil
}

func checkURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if !schemes[u.Scheme] {
		return fmt.Errorf("scheme %q is not one of tcp, tls, quic, ws, wss", u.Scheme)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return errors.New("want scheme://host:port")
	}
	return nil
}
