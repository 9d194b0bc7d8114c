package registry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// A farm token is a farmer's consent that nodes join a farm. The farmer
// makes one (zosctl farm token FARM), the node presents it when it
// registers (zos node --farm-token, farm_token= on the kernel command
// line), and the registry lets a node join or move to a farm only with a
// token of that farm, signed by the key of the farm's twin and not expired.
// A node registering again in the farm it is in needs none. A token serves
// any number of nodes until it expires.
//
// Its text is FarmTokenPrefix and the unpadded base64url of 92 bytes: the
// farm id (4, big endian), the expiry (8, unix seconds, big endian), a
// random id (16) and the ed25519 signature (64) of farmTokenContext
// followed by the first 28 bytes.
const FarmTokenPrefix = "zft1_"

// farmTokenContext starts the bytes a farm token's signature covers, so
// that no other message a twin key signs passes for a token: registry
// writes start with "zos-registry-v1\n", relay envelopes and hub requests
// with their own tags, and the NATS nonce a twin signs when it connects is
// text, which never holds the byte 0xff.
const farmTokenContext = "\xffzos-farm-token-v1\n"

const (
	farmTokenClaims = 4 + 8 + 16
	farmTokenSize   = farmTokenClaims + ed25519.SignatureSize
	// maxFarmTokenLen bounds the text of a token.
	maxFarmTokenLen = len(FarmTokenPrefix) + (farmTokenSize*8+5)/6
)

// FarmToken is a decoded farm token.
type FarmToken struct {
	FarmID uint32
	// Expires is when the token stops letting nodes join (whole seconds).
	Expires   time.Time
	ID        [16]byte
	Signature [ed25519.SignatureSize]byte
}

// NewFarmToken makes a token letting nodes join farm until expires,
// signed by key (the key of the farm's twin).
func NewFarmToken(key identity.Key, farm uint32, expires time.Time) (FarmToken, error) {
	if farm == 0 {
		return FarmToken{}, fmt.Errorf("%w: farm token needs a farm id", ErrInvalid)
	}
	if key.Private() == nil {
		return FarmToken{}, fmt.Errorf("%w: farm token needs the farmer's key", ErrInvalid)
	}
	t := FarmToken{FarmID: farm, Expires: time.Unix(expires.Unix(), 0).UTC()}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return FarmToken{}, fmt.Errorf("making farm token id: %w", err)
	}
	copy(t.Signature[:], key.Sign(t.signingBytes()))
	return t, nil
}

// claims are the token's bytes before the signature.
func (t FarmToken) claims() []byte {
	b := make([]byte, 0, farmTokenClaims)
	b = binary.BigEndian.AppendUint32(b, t.FarmID)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	return append(b, t.ID[:]...)
}

func (t FarmToken) signingBytes() []byte {
	return append([]byte(farmTokenContext), t.claims()...)
}

// String is the token's text form.
func (t FarmToken) String() string {
	return FarmTokenPrefix + base64.RawURLEncoding.EncodeToString(append(t.claims(), t.Signature[:]...))
}

// IDHex is the token's random id in hex, to tell tokens apart in logs.
func (t FarmToken) IDHex() string { return hex.EncodeToString(t.ID[:]) }

// ParseFarmToken decodes a token's text; it checks the form only
// (Verify checks the signature and the expiry).
func ParseFarmToken(s string) (FarmToken, error) {
	if len(s) > maxFarmTokenLen || !strings.HasPrefix(s, FarmTokenPrefix) {
		return FarmToken{}, fmt.Errorf("%w: farm token: want %s followed by %d base64url characters", ErrInvalid, FarmTokenPrefix, maxFarmTokenLen-len(FarmTokenPrefix))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(FarmTokenPrefix):])
	if err != nil || len(b) != farmTokenSize {
		return FarmToken{}, fmt.Errorf("%w: farm token is not %d base64url bytes", ErrInvalid, farmTokenSize)
	}
	var t FarmToken
	t.FarmID = binary.BigEndian.Uint32(b)
	exp := binary.BigEndian.Uint64(b[4:])
	if exp > 1<<62 {
		return FarmToken{}, fmt.Errorf("%w: farm token expiry out of range", ErrInvalid)
	}
	t.Expires = time.Unix(int64(exp), 0).UTC()
	copy(t.ID[:], b[12:])
	copy(t.Signature[:], b[farmTokenClaims:])
	if t.FarmID == 0 {
		return FarmToken{}, fmt.Errorf("%w: farm token names no farm", ErrInvalid)
	}
	// The text must be the one encoding of these bytes.
	if !bytes.Equal([]byte(t.String()), []byte(s)) {
		return FarmToken{}, fmt.Errorf("%w: farm token is not in canonical form", ErrInvalid)
	}
	return t, nil
}

// Verify checks that the token was signed by pub (the key of the farm's
// twin) and has not expired at now.
func (t FarmToken) Verify(pub ed25519.PublicKey, now time.Time) error {
	if !identity.Verify(pub, t.signingBytes(), t.Signature[:]) {
		return fmt.Errorf("%w: farm token %s was not signed by the twin of farm %d", ErrBadSignature, t.IDHex(), t.FarmID)
	}
	if !now.Before(t.Expires) {
		return fmt.Errorf("%w: farm token %s of farm %d expired at %s", ErrUnauthorized, t.IDHex(), t.FarmID, t.Expires.Format(time.RFC3339))
	}
	return nil
}
