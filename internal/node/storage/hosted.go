package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/zos-go/zos/internal/atomicfile"
)

// stateName is the file in the hosted data dir that records the disk files
// the node made, so that one that goes missing is noticed instead of being
// made again, empty, under the same name.
const stateName = "disks.json"

// diskRecord is one hosted disk file the node made and formatted.
type diskRecord struct {
	File  string     `json:"file"` // base name in DataDir
	Type  DeviceType `json:"type"`
	Size  uint64     `json:"size"`
	Label string     `json:"label,omitempty"` // pool label once formatted
}

// diskState is the content of stateName.
type diskState struct {
	Disks []diskRecord `json:"disks"`
	// Cache is the label of the pool holding zos-cache (the node's
	// deployments and key), "" while it is a tmpfs.
	Cache string `json:"cache,omitempty"`
}

func (s *diskState) find(file string) (diskRecord, bool) {
	for _, r := range s.Disks {
		if r.File == file {
			return r, true
		}
	}
	return diskRecord{}, false
}

func (s *diskState) put(r diskRecord) {
	for i := range s.Disks {
		if s.Disks[i].File == r.File {
			s.Disks[i] = r
			return
		}
	}
	s.Disks = append(s.Disks, r)
	sort.Slice(s.Disks, func(i, j int) bool { return s.Disks[i].File < s.Disks[j].File })
}

// readState reads the record of hosted disks; none yet is an empty record.
func readState(dir string) (diskState, error) {
	var s diskState
	b, err := os.ReadFile(filepath.Join(dir, stateName))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading %s: %w", stateName, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parsing %s: %w", stateName, err)
	}
	for _, r := range s.Disks {
		if r.File == "" || r.File != filepath.Base(r.File) || (r.Type != SSD && r.Type != HDD) {
			return diskState{}, fmt.Errorf("parsing %s: bad record %+v", stateName, r)
		}
	}
	return s, nil
}

func writeState(dir string, s diskState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, stateName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", stateName, err)
	}
	return nil
}

// missingReason says why a recorded disk file is not used, or "" when it is
// there in full.
func missingReason(file string, r diskRecord) string {
	st, err := os.Stat(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("disk file %s is missing; not made again (start with --recreate-missing-disks to make a new empty one)", file)
	case err != nil:
		return fmt.Sprintf("disk file %s: %v", file, err)
	case uint64(st.Size()) < r.Size:
		return fmt.Sprintf("disk file %s shrank to %d bytes from %d; not grown again (start with --recreate-missing-disks to make a new empty one)",
			file, st.Size(), r.Size)
	}
	return ""
}

// ErrCacheLost is returned by Start when the pool that held the cache of a
// hosted node is missing or failed: starting over with an empty cache
// would forget the node's deployments, so only the farmer decides it
// (Config.RecreateMissing).
var ErrCacheLost = errors.New("cache lost")

// cacheLostLocked refuses a start whose recorded cache pool is missing or
// failed, unless RecreateMissing.
func (m *Module) cacheLostLocked() error {
	if m.state.Cache == "" || m.cfg.RecreateMissing {
		return nil
	}
	for _, p := range m.pools {
		if p.name != m.state.Cache {
			continue
		}
		if p.broken == "" {
			return nil
		}
		m.log.Error("cache_lost", "pool", p.name, "reason", p.broken)
		return fmt.Errorf("%w: the cache (the node's deployments and key) is on pool %s, which failed: %s; bring its disk back, or start with --recreate-missing-disks to start over with an empty cache",
			ErrCacheLost, p.name, p.broken)
	}
	m.log.Error("cache_lost", "pool", m.state.Cache, "reason", "pool not found")
	return fmt.Errorf("%w: the cache (the node's deployments and key) was on pool %s, which is not found; bring its disk back, or start with --recreate-missing-disks to start over with an empty cache",
		ErrCacheLost, m.state.Cache)
}

// recordHostedLocked records the hosted disks that became pools, keeping the
// records of those that are missing, and the pool of the cache.
func (m *Module) recordHostedLocked() error {
	if len(m.cfg.Disks) == 0 {
		return nil
	}
	s := m.state
	if m.cache != nil {
		s.Cache = m.cache.name
	} else if m.limited {
		s.Cache = ""
	}
	for _, p := range m.pools {
		if p.backing == "" || p.missing {
			continue
		}
		s.put(diskRecord{File: filepath.Base(p.backing), Type: p.typ, Size: p.fileSize, Label: p.name})
	}
	m.state = s
	return writeState(m.cfg.DataDir, s)
}

// Existing reports whether the node had pools before this start: one was
// adopted (not formatted now), or a recorded hosted disk is missing. A node
// with existing pools had an identity.
func (m *Module) Existing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pools {
		if !p.fresh {
			return true
		}
	}
	return false
}
