// Package planetary runs the node's yggdrasil overlay ("planetary network")
// in-process through the yggdrasil-go library: the node's key (persisted in
// its data dir) gives it an address in 200::/8 and a /64 in 300::/8 for its
// VMs and zdb namespaces.
package planetary

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/yggdrasil-network/yggdrasil-go/src/core"
	"github.com/yggdrasil-network/yggdrasil-go/src/ipv6rwc"
	"github.com/yggdrasil-network/yggdrasil-go/src/tun"
)

// Overlay is a running yggdrasil node.
type Overlay struct {
	log   *slog.Logger
	core  *core.Core
	rwc   *ipv6rwc.ReadWriteCloser
	peers *peers

	mu  sync.Mutex
	tun *tun.TunAdapter
}

// Start loads (or creates) the key and starts the overlay, dialing every
// peer in the background: a dead peer is reported by Peers, not an error.
func Start(cfg Config, log *slog.Logger) (*Overlay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := LoadKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cert, err := certificate(key)
	if err != nil {
		return nil, err
	}
	opts := []core.SetupOption{core.NodeInfoPrivacy(true)}
	for _, p := range cfg.Peers {
		opts = append(opts, core.Peer{URI: p})
	}
	for _, l := range cfg.Listen {
		opts = append(opts, core.ListenAddress(l))
	}
	ps := newPeers(cfg.Peers)
	c, err := core.New(cert, logger{l: log.With("component", "yggdrasil"), peers: ps}, opts...)
	if err != nil {
		return nil, fmt.Errorf("start planetary: %w", err)
	}
	return &Overlay{log: log, core: c, rwc: ipv6rwc.NewReadWriteCloser(c), peers: ps}, nil
}

// Address is the node's own overlay address (200::/7).
func (o *Overlay) Address() netip.Addr {
	a, _ := netip.AddrFromSlice(o.core.Address())
	return a
}

// Subnet is the /64 (300::/8) the node routes to its VMs and zdb namespaces.
func (o *Overlay) Subnet() netip.Prefix {
	s := o.core.Subnet()
	a, _ := netip.AddrFromSlice(s.IP)
	ones, _ := s.Mask.Size()
	return netip.PrefixFrom(a, ones)
}

// Peers lists the configured peers, then the inbound ones, and whether
// each link is up (from the library's link events: see peers.go; the
// library's own GetPeers races with its links).
func (o *Overlay) Peers() []PeerStatus { return o.peers.List() }

// PeersChanged has a token after each change of Peers.
func (o *Overlay) PeersChanged() <-chan struct{} { return o.peers.Changed() }

// Connected reports whether the node has joined an overlay: its spanning
// tree holds another node than itself (the router's state, read under its
// actor).
func (o *Overlay) Connected() bool {
	return len(o.core.GetTree()) > 1
}

// Packets is the raw IPv6 packet interface of the overlay: writes are sent
// (only with the node's own address or subnet as source; anything else is an
// error and dropped), reads return packets addressed to the node whose source
// matches the sender's key. It must be read continuously (the overlay's
// path lookups stall while inbound packets wait), and not used at all once
// AttachTUN has been called.
func (o *Overlay) Packets() io.ReadWriter { return o.rwc }

// AttachTUN creates the TUN device name in the current network namespace,
// gives it the node's overlay address (route 200::/7) and starts moving
// packets between it and the overlay. Needs CAP_NET_ADMIN and /dev/net/tun.
func (o *Overlay) AttachTUN(name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tun != nil {
		return fmt.Errorf("planetary tun already attached as %s", o.tun.Name())
	}
	t, err := tun.New(o.rwc, logger{l: o.log.With("component", "yggdrasil-tun")}, tun.InterfaceName(name), tun.InterfaceMTU(tun.DefaultMTU()))
	if err != nil {
		return fmt.Errorf("planetary tun %s: %w", name, err)
	}
	o.tun = t
	return nil
}

// Close stops the TUN (removing its device) and the overlay.
func (o *Overlay) Close() error {
	o.mu.Lock()
	t := o.tun
	o.tun = nil
	o.mu.Unlock()
	var err error
	if t != nil {
		err = t.Stop()
	}
	o.core.Stop()
	return err
}

// Run starts the overlay with a TUN named tunName in the current network
// namespace, filters what the overlay sends the node (Ruleset with
// cfg.AllowPorts, removed again on return), writes "<address> <subnet>\n"
// to out, then a Status line (JSON) at once and after each change of the
// peers, and runs until ctx ends. `zos planetary` runs it as a process
// started inside the node's namespace, so that the library's sockets and
// its TUN all live there.
func Run(ctx context.Context, cfg Config, tunName string, fw Firewall, out io.Writer, log *slog.Logger) error {
	o, err := Start(cfg, log)
	if err != nil {
		return err
	}
	defer o.Close()
	// the filter is in place before the TUN exists: nothing reaches the
	// node unfiltered
	if err := fw.Apply("", Ruleset(tunName, cfg.AllowPorts)); err != nil {
		return fmt.Errorf("planetary firewall: %w", err)
	}
	defer func() {
		if err := fw.Apply("", DropRuleset()); err != nil {
			log.Warn("planetary_firewall_remove", "err", err)
		}
	}()
	if err := o.AttachTUN(tunName); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "%s %s\n", o.Address(), o.Subnet()); err != nil {
		return err
	}
	log.Info("planetary_up", "address", o.Address(), "subnet", o.Subnet(), "tun", tunName, "peers", len(cfg.Peers))
	enc := json.NewEncoder(out)
	for {
		if err := enc.Encode(Status{Peers: o.Peers()}); err != nil {
			return fmt.Errorf("writing the planetary status: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.PeersChanged():
		}
	}
}
