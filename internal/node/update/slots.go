package update

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/release"
)

// Manifest is a slot's record of its release.
type Manifest struct {
	Channel   string            `json:"channel"`
	Version   string            `json:"version"`
	Artifacts map[string]string `json:"artifacts"` // name -> hex SHA-256 from the signed targets
}

func slotsDir(dir string) string { return filepath.Join(dir, "slots") }

// SlotDir is where version's slot lives.
func SlotDir(dir, version string) string { return filepath.Join(slotsDir(dir), version) }

// Binary is the zos of version's slot.
func Binary(dir, version string) string { return filepath.Join(SlotDir(dir, version), "zos") }

// fetcher downloads a verified artifact (release.Client).
type fetcher interface {
	Fetch(a release.Artifact) ([]byte, error)
}

// install downloads rel's artifacts (each verified against the signed
// targets) into a temporary slot, synced, and renames it into place whole.
// A slot already there is checked and kept.
func install(dir string, c fetcher, rel release.Release) error {
	if !release.ValidName(rel.Version) {
		return fmt.Errorf("bad version %q", rel.Version)
	}
	final := SlotDir(dir, rel.Version)
	if _, err := os.Stat(final); err == nil {
		if _, err := verifySlot(dir, rel.Version); err == nil {
			return nil
		}
		if err := os.RemoveAll(final); err != nil {
			return fmt.Errorf("removing a bad slot: %w", err)
		}
	}
	has := false
	for _, a := range rel.Artifacts {
		has = has || a.Name == "zos"
	}
	if !has {
		return fmt.Errorf("release %s has no zos artifact", rel.Version)
	}
	tmp := filepath.Join(slotsDir(dir), ".tmp-"+rel.Version)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("creating slot: %w", err)
	}
	m := Manifest{Channel: rel.Channel, Version: rel.Version, Artifacts: map[string]string{}}
	for _, a := range rel.Artifacts {
		data, err := c.Fetch(a)
		if err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(tmp, a.Name), data, 0o755); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("writing %s: %w", a.Name, err)
		}
		m.Artifacts[a.Name] = a.SHA256
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(tmp, "manifest.json"), b, 0o644); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("writing manifest: %w", err)
	}
	if err := atomicfile.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("committing slot: %w", err)
	}
	return nil
}

// verifySlot checks every artifact of version's slot against its manifest.
func verifySlot(dir, version string) (Manifest, error) {
	var m Manifest
	if !release.ValidName(version) {
		return m, fmt.Errorf("bad version %q", version)
	}
	b, err := os.ReadFile(filepath.Join(SlotDir(dir, version), "manifest.json"))
	if err != nil {
		return m, fmt.Errorf("slot %s: %w", version, err)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Version != version || m.Artifacts["zos"] == "" {
		return m, fmt.Errorf("slot %s: bad manifest", version)
	}
	for name, sum := range m.Artifacts {
		data, err := os.ReadFile(filepath.Join(SlotDir(dir, version), name))
		if err != nil {
			return m, fmt.Errorf("slot %s: %w", version, err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			return m, fmt.Errorf("slot %s: %s does not match its signed hash", version, name)
		}
	}
	return m, nil
}

// cleanSlots removes unfinished slots and every slot but keep.
func cleanSlots(dir string, keep ...string) error {
	ents, err := os.ReadDir(slotsDir(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		kept := false
		for _, k := range keep {
			kept = kept || (k != "" && k == name)
		}
		if kept {
			continue
		}
		if strings.HasPrefix(name, ".tmp-") || e.IsDir() {
			if err := os.RemoveAll(filepath.Join(slotsDir(dir), name)); err != nil {
				return err
			}
		}
	}
	return nil
}
