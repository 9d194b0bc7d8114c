package rmb

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zos-go/zos/internal/identity"
)

// Subject scheme.
//
//	rmb.<twin>                 requests to a twin (its Server's inbox)
//	_INBOX.<hex pubkey>.>      replies to the holder of a key (Connect sets
//	                           this prefix with nats.CustomInboxPrefix)
//	registry.twin.create       the one subject an unregistered key may use
//	registry.<op>              the registry's API (registered twins)
//
// Accounts (internal/natsd, which also holds the authenticator): the grid's own connections (system keys) live
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
	RegistryEvents = "registry.events.node.>"
	// RequestWildcard matches the requests to every twin.
	RequestWildcard = RequestPrefix + "*"
	serverQueue     = "rmb"
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

// ServerMaxPayload is the NATS max_payload the relay needs for
// DefaultMaxPayload plaintexts.
const ServerMaxPayload = 8 << 20
