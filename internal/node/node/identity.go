package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/identity"
)

// seedName is the node key's file name on the cache and on every pool.
const seedName = "seed.txt"

// loadIdentity returns the node key kept on the cache, restoring it from a
// pool mirror when the cache lost it, creating it on first start, and
// mirroring it to every pool so that a new cache finds it again.
func loadIdentity(cache string, pools []string, log *slog.Logger) (identity.Key, error) {
	primary := filepath.Join(cache, "identity", seedName)
	k, err := identity.Load(primary)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		restored := false
		for _, p := range pools {
			if m, err := identity.Load(filepath.Join(p, seedName)); err == nil {
				k, restored = m, true
				log.Info("identity_restored", "from", p)
				break
			}
		}
		if !restored {
			if k, err = identity.Generate(); err != nil {
				return identity.Key{}, err
			}
			log.Info("identity_created", "public_key", k.PublicHex())
		}
		if err := identity.Save(primary, k); err != nil {
			return identity.Key{}, fmt.Errorf("saving node key: %w", err)
		}
	default:
		return identity.Key{}, fmt.Errorf("loading node key: %w", err)
	}
	for _, p := range pools {
		m := filepath.Join(p, seedName)
		if cur, err := identity.Load(m); err == nil && string(cur.Seed()) == string(k.Seed()) {
			continue
		}
		if err := identity.Save(m, k); err != nil {
			log.Warn("identity_mirror_failed", "pool", p, "err", err)
		}
	}
	return k, nil
}
