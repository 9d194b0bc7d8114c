package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/identity"
)

// seedName is the node key's file name on the cache and on every pool.
const seedName = "seed.txt"

// pubName is the file in the data dir that remembers the node's public key,
// off the pools: a node whose pools and cache all went keeps a trace of who
// it was.
const pubName = "node.pub"

// ErrIdentity is returned when the node's key cannot be trusted: the cache
// and a pool disagree, or the key was lost while the node had pools.
var ErrIdentity = errors.New("node identity")

// identitySources is where loadIdentity looks for the node key.
type identitySources struct {
	Cache string   // cache directory: Cache/identity/seed.txt
	Pools []string // mounted healthy pools: POOL/seed.txt
	// Record is the file remembering the public key ("" for none).
	Record string
	// Existing says the node had pools before this start: it had a key.
	Existing bool
	// AllowNew lets a node with no trace of its key take a new one
	// although it had pools (the farmer said so).
	AllowNew bool
}

// loadIdentity returns the node key kept on the cache, restoring it from a
// pool copy when the cache lost it, and mirrors it to every pool so that
// any surviving pool can restore it. A copy of the private seed sits on
// every pool (mode 0600, written atomically): any one pool that survives
// gives the node back its identity, which a fingerprint could not.
//
// It refuses (ErrIdentity) when the cache and a pool, or two pools, carry
// different keys, when the key differs from the recorded public key, and
// when no key is found although the node had pools or a recorded key,
// unless AllowNew: a node never poses as new while a trace of the old
// identity exists.
func loadIdentity(src identitySources, log *slog.Logger) (identity.Key, error) {
	primary := filepath.Join(src.Cache, "identity", seedName)
	var recorded string
	if src.Record != "" {
		b, err := os.ReadFile(src.Record)
		switch {
		case err == nil:
			recorded = strings.TrimSpace(string(b))
		case !errors.Is(err, os.ErrNotExist):
			return identity.Key{}, fmt.Errorf("reading %s: %w", src.Record, err)
		}
	}
	k, err := identity.Load(primary)
	haveCache := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return identity.Key{}, fmt.Errorf("loading node key: %w", err)
	}
	// What the pools carry, by public key.
	onPools := map[string][]string{}
	keys := map[string]identity.Key{}
	for _, p := range src.Pools {
		pk, err := identity.Load(filepath.Join(p, seedName))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return identity.Key{}, fmt.Errorf("%w: the key copy on pool %s is unreadable: %v", ErrIdentity, p, err)
		}
		onPools[pk.PublicHex()] = append(onPools[pk.PublicHex()], p)
		keys[pk.PublicHex()] = pk
	}
	switch {
	case haveCache:
		for pub, pools := range onPools {
			if pub != k.PublicHex() {
				return identity.Key{}, fmt.Errorf("%w: the cache holds key %s but pool %s holds key %s; refusing to start (remove the wrong copy)",
					ErrIdentity, k.PublicHex(), strings.Join(pools, ","), pub)
			}
		}
	case len(onPools) > 1:
		var s []string
		for pub, pools := range onPools {
			s = append(s, pub+" on "+strings.Join(pools, ","))
		}
		return identity.Key{}, fmt.Errorf("%w: pools carry different keys (%s); refusing to start", ErrIdentity, strings.Join(s, "; "))
	case len(onPools) == 1:
		for pub, pools := range onPools {
			k = keys[pub]
			log.Info("identity_restored", "from", pools[0], "public_key", pub)
		}
	default:
		lost := ""
		switch {
		case recorded != "":
			lost = fmt.Sprintf("node key %s is lost: neither the cache nor any pool carries it", recorded)
		case src.Existing:
			lost = "the node has pools from before but neither the cache nor any pool carries its key"
		}
		if lost != "" && !src.AllowNew {
			log.Error("identity_lost", "reason", lost)
			return identity.Key{}, fmt.Errorf("%w: %s; refusing to register as a new node (bring back a pool that carries the key, or start with --new-identity to become a new node)",
				ErrIdentity, lost)
		}
		if k, err = identity.Generate(); err != nil {
			return identity.Key{}, err
		}
		if lost != "" {
			log.Warn("identity_replaced", "reason", lost, "public_key", k.PublicHex())
		} else {
			log.Info("identity_created", "public_key", k.PublicHex())
		}
		recorded = ""
	}
	if recorded != "" && recorded != k.PublicHex() {
		return identity.Key{}, fmt.Errorf("%w: the node's key is %s but %s records %s; refusing to start", ErrIdentity, k.PublicHex(), src.Record, recorded)
	}
	if !haveCache {
		if err := identity.Save(primary, k); err != nil {
			return identity.Key{}, fmt.Errorf("saving node key: %w", err)
		}
	}
	for _, p := range src.Pools {
		if len(onPools[k.PublicHex()]) > 0 && contains(onPools[k.PublicHex()], p) {
			continue
		}
		if err := identity.Save(filepath.Join(p, seedName), k); err != nil {
			log.Warn("identity_mirror_failed", "pool", p, "err", err)
		}
	}
	if src.Record != "" && recorded == "" && len(src.Pools) > 0 {
		if err := atomicfile.WriteFile(src.Record, []byte(k.PublicHex()+"\n"), 0o600); err != nil {
			return identity.Key{}, fmt.Errorf("recording the node's public key: %w", err)
		}
	}
	return k, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
