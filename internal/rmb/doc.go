// Package rmb is the relay of the grid: signed, end-to-end encrypted
// request/reply messages between twins over NATS, which is treated as an
// untrusted transport. A Client calls a command on another twin; a Server
// routes the commands sent to its twin to handlers. Every request is signed
// by its source twin's ed25519 key and checked by the receiver against the
// key the registry holds (TwinResolver), together with its destination,
// expiry and a replay cache (sealed replies are authenticated by their AEAD
// alone, see the wire format in envelope.go); payloads are sealed with an AEAD keyed by an
// X25519 agreement between the two twins' keys. Connect authenticates a
// twin to the grid's NATS server with its key; the server side of that
// (internal/natsd's authenticator) confines each twin to its own inbox
// with the subject scheme defined here.
//
// The node and zosctl use the Client and Server; this package does not
// link the NATS server.
package rmb
