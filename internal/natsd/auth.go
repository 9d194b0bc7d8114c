package natsd

import (
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/loglimit"
	"github.com/zos-go/zos/internal/rmb"
)

// responsePermMaxMsg is how many answers a twin may send per request it
// received.
const responsePermMaxMsg = 1

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
	// TwinPublishDeny []string{rmb.RegistryEvents}.
	TwinPublish     []string
	TwinPublishDeny []string
	TwinSubscribe   []string
}

// NewAuthenticator returns the NATS client authenticator of the embedded
// server: a client must present an nkey (an ed25519 key) and the signature of
// the server's nonce. System keys get full rights; a registered twin may
// publish to any twin's inbox and the registry, and subscribe to its own
// inbox and replies; any other key may only publish to rmb.TwinCreateSubject and
// receive the reply. Set it as Config.Authentication. log may be nil.
func NewAuthenticator(cfg AuthConfig, log *slog.Logger) server.Authentication {
	a := &authenticator{
		lookup:  cfg.Lookup,
		system:  make(map[string]bool, len(cfg.System)),
		pub:     cfg.TwinPublish,
		deny:    cfg.TwinPublishDeny,
		sub:     cfg.TwinSubscribe,
		log:     log,
		limiter: loglimit.New(time.Second),
	}
	if a.pub == nil {
		a.pub = DefaultTwinPublish()
	}
	if a.deny == nil {
		a.deny = []string{rmb.RegistryEvents}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "natsd.auth")
	for _, k := range cfg.System {
		a.system[string(k)] = true
	}
	return a
}

// DefaultTwinPublish is what a registered twin may publish to besides the
// twins' inboxes: the registry's API. In the twin account only the
// subjects the grid exports lead anywhere.
func DefaultTwinPublish() []string { return []string{rmb.RegistrySubjects} }

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
	limiter *loglimit.Limiter
}

var (
	_ server.Authentication = (*authenticator)(nil)
	_ AccountBinder         = (*authenticator)(nil)
)

// BindAccounts receives the server's accounts (Start calls it).
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
		a.refuse(c, "server sent no nonce: the server must always send a nonce")
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
	if n, ok := a.limiter.Allow(reason); ok {
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
	pubAllow := append([]string{rmb.RequestWildcard}, a.pub...)
	subAllow := append([]string{rmb.RequestSubject(twin), rmb.InboxPrefix(pub) + ".>"}, a.sub...)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pubAllow, Deny: a.deny},
		Subscribe: &server.SubjectPermission{Allow: subAllow},
		// Answer the requests received, once each, within the longest
		// ttl; the reply subject is in the twin account (see Server).
		Response: &server.ResponsePermission{MaxMsgs: responsePermMaxMsg, Expires: rmb.DefaultMaxTTL},
	}
}

func unregisteredPermissions(pub ed25519.PublicKey) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{rmb.TwinCreateSubject}},
		Subscribe: &server.SubjectPermission{Allow: []string{rmb.InboxPrefix(pub) + ".>"}},
	}
}
