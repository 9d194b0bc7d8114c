package identity

import (
	"bytes"
	"crypto/ecdh"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig := k.Sign(msg)
	if !Verify(k.Public(), msg, sig) {
		t.Fatal("valid signature did not verify")
	}
	if Verify(k.Public(), []byte("hellO"), sig) {
		t.Fatal("signature of another message verified")
	}
	if Verify(k.Public()[:5], msg, sig) || Verify(k.Public(), msg, sig[:10]) {
		t.Fatal("short key or signature verified")
	}
}

func TestMnemonicDeterministic(t *testing.T) {
	k, err := GenerateMnemonic()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(k.Mnemonic())); n != 24 {
		t.Fatalf("got %d words, want 24", n)
	}
	k2, err := FromMnemonic("  " + strings.ReplaceAll(k.Mnemonic(), " ", "   ") + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Seed(), k2.Seed()) {
		t.Fatal("same words gave different seeds")
	}
	// A known 12-word vector: entropy of all zero bytes.
	zero := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	e, err := mnemonicEntropy(zero)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e, make([]byte, 16)) {
		t.Fatalf("got entropy %x, want 16 zero bytes", e)
	}
	e, err = mnemonicEntropy("legal winner thank year wave sausage worth useful legal winner thank yellow")
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat([]byte{0x7f}, 16); !bytes.Equal(e, want) {
		t.Fatalf("got entropy %x, want %x", e, want)
	}
	if _, err := FromMnemonic("abandon abandon abandon"); err == nil {
		t.Fatal("short mnemonic accepted")
	}
	if _, err := FromMnemonic(strings.Replace(zero, "about", "abandon", 1)); err == nil {
		t.Fatal("mnemonic with a bad checksum accepted")
	}
}

func TestSeedFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		make func() (Key, error)
	}{
		{"seed", Generate},
		{"mnemonic", GenerateMnemonic},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := tt.make()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, tt.name, "seed.txt")
			if err := Save(p, k); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("got mode %v, want 0600", st.Mode().Perm())
			}
			k2, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.Seed(), k2.Seed()) || k.Mnemonic() != k2.Mnemonic() {
				t.Fatal("loaded key differs")
			}
		})
	}
	// Legacy 1.0.0: the raw seed.
	raw := bytes.Repeat([]byte{7}, 32)
	p := filepath.Join(dir, "legacy")
	if err := os.WriteFile(p, raw, 0o400); err != nil {
		t.Fatal(err)
	}
	k, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Seed(), raw) {
		t.Fatal("legacy seed not read")
	}
	for name, body := range map[string]string{
		"garbage":  "not a seed",
		"version":  `{"version":"9.9.9","seed":"00"}`,
		"badhex":   `{"version":"1.1.0","seed":"zz"}`,
		"shortkey": `{"version":"1.1.0","seed":"0011"}`,
		"empty":    `{"version":"1.1.0"}`,
	} {
		if _, err := ParseSeedFile([]byte(body)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	k1, created, err := LoadOrCreate(p)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	k2, created, err := LoadOrCreate(p)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !bytes.Equal(k1.Seed(), k2.Seed()) {
		t.Fatal("key changed between loads")
	}
}

// TestX25519Agreement checks that both sides derive the same shared secret
// from their ed25519 keys.
func TestX25519Agreement(t *testing.T) {
	a, _ := Generate()
	b, _ := Generate()
	shared := func(self Key, peer Key) []byte {
		priv, err := ecdh.X25519().NewPrivateKey(self.X25519Private())
		if err != nil {
			t.Fatal(err)
		}
		pb, err := X25519Public(peer.Public())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ecdh.X25519().NewPublicKey(pb)
		if err != nil {
			t.Fatal(err)
		}
		s, err := priv.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if !bytes.Equal(shared(a, b), shared(b, a)) {
		t.Fatal("shared secrets differ")
	}
	if _, err := X25519Public(make([]byte, 3)); err == nil {
		t.Fatal("short key accepted")
	}
}
