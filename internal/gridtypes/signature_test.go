package gridtypes

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type testKey struct{ priv ed25519.PrivateKey }

func (k testKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

func newKeys(t testing.TB, twins ...uint32) (map[uint32]testKey, KeyGetter) {
	keys := map[uint32]testKey{}
	for _, tw := range twins {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[tw] = testKey{priv}
	}
	return keys, KeyGetterFunc(func(twin uint32) ([]byte, error) {
		k, ok := keys[twin]
		if !ok {
			return nil, fmt.Errorf("twin %d not found", twin)
		}
		return k.priv.Public().(ed25519.PublicKey), nil
	})
}

func TestSignatures(t *testing.T) {
	keys, getter := newKeys(t, 1, 2, 3)
	base := func() *Deployment {
		return dep(wl("d", ZMountType, `{"size":1}`))
	}
	for _, tt := range []struct {
		name    string
		setup   func(d *Deployment) // runs before signing
		sign    []uint32
		after   func(d *Deployment) // runs after signing
		wantErr string
	}{
		{name: "owner signs", sign: []uint32{1}},
		{name: "changed after signing", sign: []uint32{1}, after: func(d *Deployment) { d.Workloads[0].Data = []byte(`{"size":2}`) }, wantErr: "does not match"},
		{name: "metadata changed after signing", sign: []uint32{1}, after: func(d *Deployment) { d.Metadata = "x" }, wantErr: "does not match"},
		{name: "missing owner signature", sign: nil, wantErr: "missing the signature of required twin 1"},
		{
			name: "missing required co-signer",
			setup: func(d *Deployment) {
				d.SignatureRequirement.Requests = append(d.SignatureRequirement.Requests, SignatureRequest{TwinID: 2, Required: true, Weight: 1})
			},
			sign:    []uint32{1},
			wantErr: "required twin 2",
		},
		{
			name: "insufficient weight",
			setup: func(d *Deployment) {
				d.SignatureRequirement.Requests = append(d.SignatureRequirement.Requests, SignatureRequest{TwinID: 2, Weight: 1}, SignatureRequest{TwinID: 3, Weight: 1})
				d.SignatureRequirement.WeightRequired = 3
			},
			sign:    []uint32{1, 2},
			wantErr: "signatures weigh 2, 3 required",
		},
		{
			name: "enough weight",
			setup: func(d *Deployment) {
				d.SignatureRequirement.Requests = append(d.SignatureRequirement.Requests, SignatureRequest{TwinID: 2, Weight: 1}, SignatureRequest{TwinID: 3, Weight: 1})
				d.SignatureRequirement.WeightRequired = 3
			},
			sign: []uint32{1, 2, 3},
		},
		{
			name:    "signature by the wrong key",
			sign:    []uint32{1},
			after:   func(d *Deployment) { d.SignatureRequirement.Signatures[0].Signature = sigBy(t, keys[2], d) },
			wantErr: "does not match",
		},
		{name: "polka-wallet style", setup: func(d *Deployment) { d.SignatureRequirement.SignatureStyle = SignatureStylePolkaWallet }, sign: []uint32{1}},
		{
			name:    "raw signature under polka-wallet style",
			setup:   func(d *Deployment) { d.SignatureRequirement.SignatureStyle = SignatureStylePolkaWallet },
			sign:    []uint32{1},
			after:   func(d *Deployment) { d.SignatureRequirement.Signatures[0].Signature = sigBy(t, keys[1], d) },
			wantErr: "does not match",
		},
		{name: "unsupported type", sign: []uint32{1}, after: func(d *Deployment) { d.SignatureRequirement.Signatures[0].SignatureType = "rsa" }, wantErr: `unsupported signature type "rsa"`},
		{name: "not hex", sign: []uint32{1}, after: func(d *Deployment) { d.SignatureRequirement.Signatures[0].Signature = "zz" }, wantErr: "not hex"},
		{name: "short signature", sign: []uint32{1}, after: func(d *Deployment) { d.SignatureRequirement.Signatures[0].Signature = "abcd" }, wantErr: "does not match"},
		{name: "sr25519 garbage", sign: []uint32{1}, after: func(d *Deployment) { d.SignatureRequirement.Signatures[0].SignatureType = SignatureTypeSr25519 }, wantErr: "sr25519"},
		{
			name: "unknown co-signer key",
			setup: func(d *Deployment) {
				d.SignatureRequirement.Requests = append(d.SignatureRequirement.Requests, SignatureRequest{TwinID: 9, Weight: 1})
			},
			sign: []uint32{1},
			after: func(d *Deployment) {
				d.SignatureRequirement.Signatures = append(d.SignatureRequirement.Signatures, Signature{TwinID: 9, Signature: "00"})
			},
			wantErr: "twin 9 not found",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			if tt.setup != nil {
				tt.setup(d)
			}
			for _, tw := range tt.sign {
				if err := d.Sign(tw, keys[tw]); err != nil {
					t.Fatal(err)
				}
			}
			if tt.after != nil {
				tt.after(d)
			}
			err := d.Verify(getter)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want verified", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("verified, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("got %q, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrUnsupportedSignature) && !strings.Contains(err.Error(), "not found") {
				t.Fatalf("error %v is neither ErrSignature nor ErrUnsupportedSignature", err)
			}
		})
	}
}

// sigBy signs the raw hash of d with k.
func sigBy(t *testing.T, k testKey, d *Deployment) string {
	h, err := d.ChallengeHash()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(k.Sign(h))
}

func TestSignReplaces(t *testing.T) {
	keys, getter := newKeys(t, 1)
	d := dep(wl("d", ZMountType, `{"size":1}`))
	if err := d.Sign(1, keys[1]); err != nil {
		t.Fatal(err)
	}
	d.Description = "changed"
	if err := d.Sign(1, keys[1]); err != nil {
		t.Fatal(err)
	}
	if n := len(d.SignatureRequirement.Signatures); n != 1 {
		t.Fatalf("got %d signatures, want 1", n)
	}
	if err := d.Verify(getter); err != nil {
		t.Fatal(err)
	}
}
