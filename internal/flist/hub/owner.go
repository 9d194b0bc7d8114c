package hub

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/atomicfile"
)

// Repository ownership. twin<ID> (zosctl flist push's default repository)
// belongs to twin ID whoever comes first; a name that only looks like one
// (any case, leading zeros, twin0, past 2^32) belongs to nobody, so nobody
// passes for a twin. Any other repository belongs to the twin that created
// it, recorded in its .owner file.

var twinName = regexp.MustCompile(`^(?i:twin)([0-9]+)$`)

// reservedOwner tells whether repo is in the twins' namespace and if so the
// twin it belongs to (0: nobody).
func reservedOwner(repo string) (twin uint32, reserved bool) {
	m := twinName.FindStringSubmatch(repo)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil || n == 0 || repo != "twin"+strconv.FormatUint(n, 10) {
		return 0, true
	}
	return uint32(n), true
}

func (h *Hub) repoDir(repo string) string { return filepath.Join(h.cfg.Dir, "flists", repo) }

func ownerFile(dir string) string { return filepath.Join(dir, ".owner") }

// recordedOwner reads the repository's .owner record.
func (h *Hub) recordedOwner(repo string) (uint32, bool) {
	b, err := os.ReadFile(ownerFile(h.repoDir(repo)))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return uint32(n), err == nil
}

// owner is the twin a repository belongs to.
func (h *Hub) owner(repo string) (uint32, bool) {
	if t, ok := reservedOwner(repo); ok {
		return t, t != 0
	}
	return h.recordedOwner(repo)
}

// mayWrite checks that twin may write into repo: its own repository, or
// one nobody holds yet (which writing creates).
func (h *Hub) mayWrite(repo string, twin uint32) error {
	if t, ok := reservedOwner(repo); ok {
		switch {
		case t == 0:
			return refuse(http.StatusForbidden, "repository name %s is reserved: twin<ID> names twin ID's repository", repo)
		case t != twin:
			return refuse(http.StatusForbidden, "repository %s belongs to twin %d", repo, t)
		}
		return nil
	}
	if o, ok := h.recordedOwner(repo); ok {
		if o != twin {
			return refuse(http.StatusForbidden, "repository %s belongs to twin %d", repo, o)
		}
		return nil
	}
	if _, err := os.Lstat(h.repoDir(repo)); !errors.Is(err, os.ErrNotExist) {
		return refuse(http.StatusForbidden, "repository %s has no owner record", repo)
	}
	return nil
}

// claim makes sure twin may write repo and that repo exists with twin
// recorded as its owner. Called with h.mu held.
func (h *Hub) claim(repo string, twin uint32) error {
	if err := h.mayWrite(repo, twin); err != nil {
		return err
	}
	if o, ok := h.recordedOwner(repo); ok && o == twin {
		return nil
	}
	record := []byte(strconv.FormatUint(uint64(twin), 10))
	dir := h.repoDir(repo)
	if _, err := os.Lstat(dir); err == nil {
		// A twin's own repository whose record is missing or names
		// another twin (an older hub's): the record is corrected.
		h.log.Warn("hub_owner_corrected", "repo", repo, "twin", twin)
		return h.writeFile(ownerFile(dir), record)
	}
	// A new repository appears whole, with its record: made aside, renamed in.
	tmp, err := os.MkdirTemp(h.tmpDir(), "repo-*")
	if err != nil {
		return fmt.Errorf("creating repository %s: %w", repo, err)
	}
	err = os.Chmod(tmp, 0o755)
	if err == nil {
		err = writeSynced(ownerFile(tmp), record)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("creating repository %s: %w", repo, err)
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}

// quarantineSquatted moves aside the twin<ID> repositories whose record
// does not name twin ID (an older hub gave a repository to its first
// uploader, whoever it was), so their flists are not served as that
// twin's; nothing is deleted.
func (h *Hub) quarantineSquatted() error {
	ents, err := os.ReadDir(filepath.Join(h.cfg.Dir, "flists"))
	if err != nil {
		return fmt.Errorf("reading hub repositories: %w", err)
	}
	for _, e := range ents {
		t, reserved := reservedOwner(e.Name())
		if !reserved || !e.IsDir() {
			continue
		}
		o, ok := h.recordedOwner(e.Name())
		if ok && t != 0 && o == t {
			continue
		}
		q := filepath.Join(h.cfg.Dir, "quarantine")
		if err := os.MkdirAll(q, 0o755); err != nil {
			return fmt.Errorf("creating hub quarantine: %w", err)
		}
		dst := filepath.Join(q, e.Name()+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
		if err := os.Rename(h.repoDir(e.Name()), dst); err != nil {
			return fmt.Errorf("quarantining repository %s: %w", e.Name(), err)
		}
		h.log.Warn("hub_repo_quarantined", "repo", e.Name(), "recorded_owner", o, "moved_to", dst)
	}
	return nil
}
