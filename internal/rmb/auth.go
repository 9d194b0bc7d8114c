package rmb

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
)

// Subject scheme.
//
//	rmb.<twin>                 requests to a twin (its Server's inbox)
//	_INBOX.<hex pubkey>.>      replies to the holder of a key (Connect sets
//	                           this prefix with nats.CustomInboxPrefix)
//	registry.twin.create       the one subject an unregistered key may use
//	registry.<op>              the registry's API (registered twins)
//
// Accounts (internal/natsd): the grid's own connections (system keys) live
// in the grid account with JetStream and the registry's buckets and events;
// every other key lives in the twin account, which imports only the
// registry's request subjects. A reply subject given by a twin therefore
// can only ever name a subject of the twin account. Inside it, a twin
// answers a request it received once (the NATS "allow responses"
// permission), and Server answers only on the authenticated requester's own
// inbox.
const (
	RequestPrefix     = "rmb."
	InboxRoot         = "_INBOX"
	TwinCreateSubject = "registry.twin.create"
	RegistrySubjects  = "registry.>"
	// RegistryEvents are the subjects of the registry's events (in the
	// grid's account; denied to twins all the same). Twins read events
	// with the registry request registry.events.fetch.
	RegistryEvents     = "registry.events.node.>"
	requestWildcard    = RequestPrefix + "*"
	serverQueue        = "rmb"
	responsePermMaxMsg = 1
)

// RequestSubject is the subject a twin's Server listens on.
func RequestSubject(twin uint32) string {
	return RequestPrefix + strconv.FormatUint(uint64(twin), 10)
}

// InboxPrefix is the reply-subject prefix of the connections of a key.
func InboxPrefix(pub ed25519.PublicKey) string {
	return InboxRoot + "." + hex.EncodeToString(pub)
}

// Connect connects to NATS authenticated with the twin's key: NATS user
// nkeys are ed25519 keys, so the server's nonce is signed with the twin key.
// Replies come on InboxPrefix(key.Public()), the only reply subjects the
// authenticator lets this key subscribe to. opts come after ours.
func Connect(url string, key identity.Key, opts ...nats.Option) (*nats.Conn, error) {
	pub, err := nkeys.Encode(nkeys.PrefixByteUser, key.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding nkey: %w", err)
	}
	all := []nats.Option{
		nats.Nkey(string(pub), func(nonce []byte) ([]byte, error) {
			if !natsNonce(nonce) {
				return nil, fmt.Errorf("refusing to sign what %s sent as its nonce (%d bytes): not a NATS server nonce", url, len(nonce))
			}
			return key.Sign(nonce), nil
		}),
		nats.CustomInboxPrefix(InboxPrefix(key.Public())),
	}
	nc, err := nats.Connect(url, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s as %s: %w", url, pub, err)
	}
	return nc, nil
}

// natsNonce reports whether b has the form of a NATS server's nonce: 11
// random bytes in unpadded base64url, 15 characters. The twin key signs
// the nonce a server sends; a rogue server (or anyone in the middle of a
// plain connection) must not get the key's signature on anything else: a
// registry write, a deployment's challenge, a farm token all have other
// forms (newlines, 0xff, 16 raw or 32 hex bytes).
func natsNonce(b []byte) bool {
	if len(b) != 15 {
		return false
	}
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// AuthConfig configures an authenticator.
type AuthConfig struct {
	// Lookup returns the twin of a registered key. It runs on every
	// connection attempt, so it must answer from memory.
	Lookup func(pub ed25519.PublicKey) (twin uint32, ok bool)
	// System keys (registry, explorer) get every right.
	System []ed25519.PublicKey
	// TwinPublish and TwinSubscribe are subjects a registered twin may use
	// besides rmb.* (publish), its rmb.<twin> and its reply inbox
	// (subscribe), all in the twin account; TwinPublishDeny overrides
	// TwinPublish. Nil TwinPublish means DefaultTwinPublish(), nil
	// TwinPublishDeny []string{RegistryEvents}.
	TwinPublish     []string
	TwinPublishDeny []string
	TwinSubscribe   []string
	Log             *slog.Logger
}

// NewAuthenticator returns the NATS client authenticator of the embedded
// server: a client must present an nkey (an ed25519 key) and the signature of
// the server's nonce. System keys get full rights; a registered twin may
// publish to any twin's inbox and the registry, and subscribe to its own
// inbox and replies; any other key may only publish to TwinCreateSubject and
// receive the reply. Set it as server.Options.CustomClientAuthentication
// with AlwaysEnableNonce (see ConfigureServer).
func NewAuthenticator(lookup func(pub ed25519.PublicKey) (twin uint32, ok bool), system []ed25519.PublicKey, log *slog.Logger) server.Authentication {
	return NewAuthenticatorConfig(AuthConfig{Lookup: lookup, System: system, Log: log})
}

// NewAuthenticatorConfig is NewAuthenticator with more choices.
func NewAuthenticatorConfig(cfg AuthConfig) server.Authentication {
	a := &authenticator{
		lookup:  cfg.Lookup,
		system:  make(map[string]bool, len(cfg.System)),
		pub:     cfg.TwinPublish,
		deny:    cfg.TwinPublishDeny,
		sub:     cfg.TwinSubscribe,
		log:     cfg.Log,
		limiter: newLogLimiter(),
	}
	if a.pub == nil {
		a.pub = DefaultTwinPublish()
	}
	if a.deny == nil {
		a.deny = []string{RegistryEvents}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "rmb.auth")
	for _, k := range cfg.System {
		a.system[string(k)] = true
	}
	return a
}

// DefaultTwinPublish is what a registered twin may publish to besides the
// twins' inboxes: the registry's API. In the twin account only the
// subjects the grid exports lead anywhere.
func DefaultTwinPublish() []string { return []string{RegistrySubjects} }

// ServerMaxPayload is the NATS max_payload the relay needs for
// DefaultMaxPayload plaintexts.
const ServerMaxPayload = 8 << 20

type authenticator struct {
	// grid and twins are the server's accounts, set by BindAccounts
	// before the server accepts clients; read only afterwards.
	grid, twins *server.Account

	lookup  func(pub ed25519.PublicKey) (uint32, bool)
	system  map[string]bool // by raw public key; read only
	pub     []string
	deny    []string
	sub     []string
	log     *slog.Logger
	limiter *logLimiter
}

var (
	_ server.Authentication = (*authenticator)(nil)
	_ natsd.AccountBinder   = (*authenticator)(nil)
)

// BindAccounts receives the server's accounts (natsd.Start calls it).
func (a *authenticator) BindAccounts(grid, twins *server.Account) {
	a.grid, a.twins = grid, twins
}

// nkeyRegistrar is implemented by the server's clients; registering as an
// nkey user shows the key in the server's monitoring.
type nkeyRegistrar interface {
	RegisterNkeyUser(*server.NkeyUser) error
}

// Check authenticates a client and sets its permissions.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o == nil || o.Nkey == "" {
		a.refuse(c, "no nkey presented")
		return false
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(o.Nkey))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		a.refuse(c, "nkey is not a user key")
		return false
	}
	pub := ed25519.PublicKey(raw)
	nonce := c.GetNonce()
	if len(nonce) == 0 {
		a.refuse(c, "server sent no nonce: set AlwaysEnableNonce (rmb.ConfigureServer)")
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(o.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(o.Sig); err != nil {
			a.refuse(c, "signature is not base64")
			return false
		}
	}
	if !identity.Verify(pub, nonce, sig) {
		a.refuse(c, "nonce signature does not verify")
		return false
	}

	if a.grid == nil || a.twins == nil {
		a.refuse(c, "server has no accounts: start it with natsd (TwinServices)")
		return false
	}
	var perms *server.Permissions
	role, acc := "system", a.grid
	twin, registered := uint32(0), false
	if !a.system[string(pub)] {
		acc = a.twins
		if a.lookup != nil {
			twin, registered = a.lookup(pub)
		}
		if registered {
			role = "twin"
			perms = a.twinPermissions(twin, pub)
		} else {
			role = "unregistered"
			perms = unregisteredPermissions(pub)
		}
	}
	if r, ok := c.(nkeyRegistrar); ok {
		if err := r.RegisterNkeyUser(&server.NkeyUser{Nkey: o.Nkey, Permissions: perms, Account: acc}); err != nil {
			a.refuse(c, "registering user: "+err.Error())
			return false
		}
	} else {
		a.refuse(c, "client cannot be placed into an account")
		return false
	}
	a.log.Debug("client_authenticated", "role", role, "twin", twin, "nkey", o.Nkey, "remote", addr(c))
	return true
}

func (a *authenticator) refuse(c server.ClientAuthentication, reason string) {
	if n, ok := a.limiter.allow(reason); ok {
		a.log.Warn("client_refused", "reason", reason, "remote", addr(c), "suppressed", n)
	}
}

func addr(c server.ClientAuthentication) string {
	if a := c.RemoteAddress(); a != nil {
		return a.String()
	}
	return ""
}

func (a *authenticator) twinPermissions(twin uint32, pub ed25519.PublicKey) *server.Permissions {
	pubAllow := append([]string{requestWildcard}, a.pub...)
	subAllow := append([]string{RequestSubject(twin), InboxPrefix(pub) + ".>"}, a.sub...)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pubAllow, Deny: a.deny},
		Subscribe: &server.SubjectPermission{Allow: subAllow},
		// Answer the requests received, once each, within the longest
		// ttl; the reply subject is in the twin account (see Server).
		Response: &server.ResponsePermission{MaxMsgs: responsePermMaxMsg, Expires: DefaultMaxTTL},
	}
}

func unregisteredPermissions(pub ed25519.PublicKey) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{TwinCreateSubject}},
		Subscribe: &server.SubjectPermission{Allow: []string{InboxPrefix(pub) + ".>"}},
	}
}
