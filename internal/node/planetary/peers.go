package planetary

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Peer state without racing inside the library. The library's GetPeers
// reads, under its peers actor, per-link timers that each link's own
// actor writes (ironwood's Debug.GetPeers: srst/srrt): a data race the
// race detector reports whenever a link is up, whatever lock or goroutine
// the caller uses. So the overlay keeps the peers' state itself, from the
// library's link events: the two calls it makes to its logger for every
// link that comes up and goes down (v0.5.14, src/core/link.go:
// "Connected %s: %s, source %s" and "Disconnected %s: %s, source %s[;
// error: %s]", with the direction, "<overlay address>@<remote address>"
// and the local address as arguments). The logger hands them to peers
// before logging them. A library update that changed them would leave
// every peer down: TestPeersUpAndDownWithoutRacing fails then.

const (
	connectedFormat       = "Connected %s: %s, source %s"
	disconnectedFormat    = "Disconnected %s: %s, source %s"
	disconnectedErrFormat = "Disconnected %s: %s, source %s; error: %s"
)

// PeerStatus is one configured or inbound peer.
type PeerStatus struct {
	// URI is the configured peer URI, or for an inbound peer (listed
	// while its link is up) "inbound://<remote address>".
	URI     string `json:"uri"`
	Up      bool   `json:"up"`
	Inbound bool   `json:"inbound,omitempty"`
	// Address is the peer's overlay address while it is up.
	Address string `json:"address,omitempty"`
	// Since is when the link last came up or went down.
	Since time.Time `json:"since,omitzero"`
	// LastError is why the link last went down (empty: closed cleanly,
	// or never up: the library reports no dial errors).
	LastError string `json:"last_error,omitempty"`
}

// peers tracks the links from the library's link events.
type peers struct {
	uris    []string // the configured peers: list's first entries, in order; never changed
	mu      sync.Mutex
	list    []PeerStatus  // guarded by mu
	changed chan struct{} // a token after each change (capacity 1)
	now     func() time.Time
}

func newPeers(uris []string) *peers {
	p := &peers{uris: append([]string(nil), uris...), changed: make(chan struct{}, 1), now: time.Now}
	for _, u := range uris {
		p.list = append(p.list, PeerStatus{URI: u})
	}
	return p
}

// Changed has a token after each change of the list.
func (p *peers) Changed() <-chan struct{} { return p.changed }

// List is a copy of the peers' state: the configured peers in their
// order, then the inbound ones.
func (p *peers) List() []PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PeerStatus(nil), p.list...)
}

// event takes a call to the library's logger; it reports whether the call
// was a link event.
func (p *peers) event(format string, args []any) bool {
	var up bool
	var errText string
	switch {
	case format == connectedFormat && len(args) == 3:
		up = true
	case format == disconnectedFormat && len(args) == 3:
	case format == disconnectedErrFormat && len(args) == 4:
		errText = fmt.Sprint(args[3])
		if errText == "" {
			errText = "link closed"
		}
	default:
		return false
	}
	dir, remote := fmt.Sprint(args[0]), fmt.Sprint(args[1])
	at := strings.LastIndexByte(remote, '@')
	if at < 0 {
		return false
	}
	addr, endpoint := remote[:at], remote[at+1:]
	inbound := dir == "inbound"
	i := -1
	if !inbound {
		// a host name is resolved outside the lock
		i = slices.IndexFunc(p.uris, func(u string) bool { return sameEndpoint(u, endpoint) })
		if i < 0 {
			return true // a peer added otherwise than in the config
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if inbound {
		// an inbound link is listed while it is up (each comes from a
		// new port: the list would only grow)
		uri := "inbound://" + endpoint
		i = slices.IndexFunc(p.list, func(s PeerStatus) bool { return s.Inbound && s.URI == uri })
		switch {
		case !up && i >= 0:
			p.list = slices.Delete(p.list, i, i+1)
			p.signal()
			return true
		case !up:
			return true
		case i < 0:
			p.list = append(p.list, PeerStatus{URI: uri, Inbound: true})
			i = len(p.list) - 1
		}
	}
	s := &p.list[i]
	s.Up, s.Since = up, p.now()
	if up {
		s.Address, s.LastError = addr, ""
	} else {
		s.Address, s.LastError = "", errText
	}
	p.signal()
	return true
}

// signal puts a token in changed unless one waits already.
func (p *peers) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// sameEndpoint reports whether peer URI uri dials endpoint (the remote
// address of a link, ip:port), resolving a host name if needed.
func sameEndpoint(uri, endpoint string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	eh, ep, err := net.SplitHostPort(endpoint)
	if err != nil || u.Port() != ep {
		return false
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		return ip.Equal(net.ParseIP(eh))
	}
	ips, err := net.LookupHost(u.Hostname())
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if net.ParseIP(ip).Equal(net.ParseIP(eh)) {
			return true
		}
	}
	return false
}

// Status is what `zos planetary` writes on its output after its address
// line, one JSON object a line, at start and after each change.
type Status struct {
	Peers []PeerStatus `json:"peers"`
}
