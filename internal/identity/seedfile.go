package identity

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/atomicfile"
)

// SeedFileVersion is the version written into new seed files.
const SeedFileVersion = "1.1.0"

// seedFile is the on-disk form: versioned JSON. Version "1.0.0" files of the
// original (the raw 32 seed bytes) are read too.
type seedFile struct {
	Version  string `json:"version"`
	Seed     string `json:"seed,omitempty"`
	Mnemonic string `json:"mnemonic,omitempty"`
}

// Save writes the key to path with mode 0600, atomically (write to a
// temporary file in the same directory, then rename).
func Save(path string, k Key) error {
	if len(k.priv) == 0 {
		return fmt.Errorf("%w: empty key", ErrBadKey)
	}
	f := seedFile{Version: SeedFileVersion, Mnemonic: k.mnemonic}
	if k.mnemonic == "" {
		f.Seed = hex.EncodeToString(k.Seed())
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding seed file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating key directory: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing seed file: %w", err)
	}
	return nil
}

// Load reads a seed file written by Save, or a legacy raw 32-byte seed.
func Load(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading seed file: %w", err)
	}
	return ParseSeedFile(b)
}

// ParseSeedFile decodes the bytes of a seed file.
func ParseSeedFile(b []byte) (Key, error) {
	if len(b) == SeedSize {
		return FromSeed(b) // version 1.0.0: the raw seed
	}
	var f seedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Key{}, fmt.Errorf("%w: seed file is neither a raw seed nor JSON: %v", ErrBadKey, err)
	}
	switch f.Version {
	case "1.1.0":
	default:
		return Key{}, fmt.Errorf("%w: unsupported seed file version %q", ErrBadKey, f.Version)
	}
	switch {
	case f.Mnemonic != "":
		return FromMnemonic(f.Mnemonic)
	case f.Seed != "":
		return FromHexSeed(f.Seed)
	}
	return Key{}, errors.New("seed file holds neither a seed nor a mnemonic")
}

// LoadOrCreate loads the key at path, creating a new random one if the file
// does not exist. created reports whether a new key was made.
func LoadOrCreate(path string) (k Key, created bool, err error) {
	k, err = Load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, false, err
	}
	k, err = Generate()
	if err != nil {
		return Key{}, false, err
	}
	if err := Save(path, k); err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}
