package gridtypes

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
)

// Signature types.
const (
	SignatureTypeEd25519 = "ed25519"
	SignatureTypeSr25519 = "sr25519"
)

// SignatureStylePolkaWallet wraps the hash as polkadot wallets sign it.
const SignatureStylePolkaWallet = "polka-wallet"

// SignatureRequest names a twin whose signature counts.
type SignatureRequest struct {
	TwinID   uint32 `json:"twin_id"`
	Required bool   `json:"required"`
	Weight   uint   `json:"weight"`
}

// Signature is one twin's signature of the challenge hash, hex.
type Signature struct {
	TwinID        uint32 `json:"twin_id"`
	Signature     string `json:"signature"`
	SignatureType string `json:"signature_type"`
}

// SignatureRequirement says who must sign and how much weight is enough.
type SignatureRequirement struct {
	Requests       []SignatureRequest `json:"requests"`
	WeightRequired uint               `json:"weight_required"`
	Signatures     []Signature        `json:"signatures"`
	SignatureStyle string             `json:"signature_style"`
}

func (s *SignatureRequirement) challenge(c *challenger) {
	for _, r := range s.Requests {
		c.d(uint64(r.TwinID))
		c.t(r.Required)
		c.d(uint64(r.Weight))
	}
	c.d(uint64(s.WeightRequired))
	c.s(s.SignatureStyle)
}

func (s *SignatureRequirement) valid(owner uint32) error {
	if s.SignatureStyle != "" && s.SignatureStyle != SignatureStylePolkaWallet {
		return fmt.Errorf("signature_style: %q is not supported", s.SignatureStyle)
	}
	found := false
	for _, r := range s.Requests {
		if r.TwinID == owner {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("requests: the deployment's twin %d must be among the requests", owner)
	}
	return nil
}

// Errors of signature verification.
var (
	ErrSignature            = errors.New("invalid signature")
	ErrUnsupportedSignature = errors.New("unsupported signature type")
)

// KeyGetter returns the public key of a twin.
type KeyGetter interface {
	TwinKey(twin uint32) ([]byte, error)
}

// KeyGetterFunc adapts a function to KeyGetter.
type KeyGetterFunc func(twin uint32) ([]byte, error)

// TwinKey calls f.
func (f KeyGetterFunc) TwinKey(twin uint32) ([]byte, error) { return f(twin) }

// signedMessage is what a signature covers: the raw 16-byte hash, or with
// the polka-wallet style "<Bytes>" + hex(hash) + "</Bytes>".
func (d *Deployment) signedMessage() ([]byte, error) {
	h, err := d.ChallengeHash()
	if err != nil {
		return nil, err
	}
	if d.SignatureRequirement.SignatureStyle == SignatureStylePolkaWallet {
		return []byte("<Bytes>" + hex.EncodeToString(h) + "</Bytes>"), nil
	}
	return h, nil
}

// Signer signs a message as a twin.
type Signer interface {
	Sign(msg []byte) []byte
}

// Sign adds or replaces the ed25519 signature of twin.
func (d *Deployment) Sign(twin uint32, s Signer) error {
	msg, err := d.signedMessage()
	if err != nil {
		return err
	}
	sig := Signature{TwinID: twin, Signature: hex.EncodeToString(s.Sign(msg)), SignatureType: SignatureTypeEd25519}
	for i := range d.SignatureRequirement.Signatures {
		if d.SignatureRequirement.Signatures[i].TwinID == twin {
			d.SignatureRequirement.Signatures[i] = sig
			return nil
		}
	}
	d.SignatureRequirement.Signatures = append(d.SignatureRequirement.Signatures, sig)
	return nil
}

// Verify checks the signatures against the requirement: the deployment's
// twin is always required; every required twin must have signed; every
// present signature of a requested twin must verify and adds its weight;
// the total must reach weight_required. (The original also fails when a
// non-required twin did not sign; here such a twin simply adds no weight.)
func (d *Deployment) Verify(keys KeyGetter) error {
	msg, err := d.signedMessage()
	if err != nil {
		return err
	}
	req := &d.SignatureRequirement
	sigs := make(map[uint32]Signature, len(req.Signatures))
	for _, s := range req.Signatures {
		sigs[s.TwinID] = s
	}
	ownerRequested := false
	var weight uint
	for _, r := range req.Requests {
		required := r.Required || r.TwinID == d.TwinID
		if r.TwinID == d.TwinID {
			ownerRequested = true
		}
		s, ok := sigs[r.TwinID]
		if !ok {
			if required {
				return fmt.Errorf("%w: missing the signature of required twin %d", ErrSignature, r.TwinID)
			}
			continue
		}
		key, err := keys.TwinKey(r.TwinID)
		if err != nil {
			return fmt.Errorf("getting the key of twin %d: %w", r.TwinID, err)
		}
		if err := verifyOne(s, key, msg); err != nil {
			return fmt.Errorf("twin %d: %w", r.TwinID, err)
		}
		weight += r.Weight
	}
	if !ownerRequested {
		return fmt.Errorf("%w: the deployment's twin %d is not among the requests", ErrSignature, d.TwinID)
	}
	if weight < req.WeightRequired {
		return fmt.Errorf("%w: signatures weigh %d, %d required", ErrSignature, weight, req.WeightRequired)
	}
	return nil
}

func verifyOne(s Signature, key, msg []byte) error {
	sig, err := hex.DecodeString(s.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not hex", ErrSignature)
	}
	switch s.SignatureType {
	case SignatureTypeEd25519, "":
		if len(key) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: public key is %d bytes", ErrSignature, len(key))
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(key, msg, sig) {
			return fmt.Errorf("%w: ed25519 signature does not match", ErrSignature)
		}
		return nil
	case SignatureTypeSr25519:
		return verifySr25519(key, msg, sig)
	}
	return fmt.Errorf("%w %q", ErrUnsupportedSignature, s.SignatureType)
}

// verifySr25519 checks a schnorrkel signature with the "substrate" context.
func verifySr25519(key, msg, sig []byte) error {
	if len(key) != 32 || len(sig) != 64 {
		return fmt.Errorf("%w: sr25519 key or signature has the wrong length", ErrSignature)
	}
	var kb [32]byte
	copy(kb[:], key)
	pub, err := schnorrkel.NewPublicKey(kb)
	if err != nil {
		return fmt.Errorf("%w: bad sr25519 key: %v", ErrSignature, err)
	}
	var sb [64]byte
	copy(sb[:], sig)
	var s schnorrkel.Signature
	if err := s.Decode(sb); err != nil {
		return fmt.Errorf("%w: bad sr25519 signature: %v", ErrSignature, err)
	}
	ok, err := pub.Verify(&s, schnorrkel.NewSigningContext([]byte("substrate"), msg))
	if err != nil || !ok {
		return fmt.Errorf("%w: sr25519 signature does not match", ErrSignature)
	}
	return nil
}
