package gridsync

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/node/provision"
)

// GridKeys is what the node asks the grid once when no billing key is
// pinned: the key that signs contract state changes (the registry's grid
// info). What it says is kept in Config.GridKeyFile and never replaced by
// a later answer.
type GridKeys interface {
	GridKey(ctx context.Context) (ed25519.PublicKey, error)
}

// ErrNoGridKey is returned when the node has no billing key to check the
// grid's state changes with.
var ErrNoGridKey = errors.New("no grid billing key")

// errAskingGridKey marks a failure to ask the grid for its key, which a
// later try may not have.
var errAskingGridKey = errors.New("asking the grid for its billing key")

// ParseGridKey decodes a hex ed25519 public key.
func ParseGridKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("grid billing key %q: want %d bytes of hex", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// gridKey returns the billing key the node trusts: the one configured
// (Config.GridKey, pinned by the operator and kept in GridKeyFile), else
// the one kept in GridKeyFile, else the one GridKeys says, kept from then
// on (trust on first use).
func (s *Sync) gridKey(ctx context.Context) (ed25519.PublicKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	var kept ed25519.PublicKey
	if s.cfg.GridKeyFile != "" {
		b, err := os.ReadFile(s.cfg.GridKeyFile)
		switch {
		case err == nil:
			if kept, err = ParseGridKey(string(b)); err != nil {
				return nil, fmt.Errorf("reading %s: %w", s.cfg.GridKeyFile, err)
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading the grid billing key: %w", err)
		}
	}
	key := kept
	switch {
	case s.cfg.GridKey != nil:
		key = s.cfg.GridKey
		if kept != nil && !kept.Equal(key) {
			s.log.Warn("grid_key_replaced_by_flag", "kept", hex.EncodeToString(kept), "pinned", hex.EncodeToString(key))
		}
	case kept != nil:
	case s.cfg.GridKeys != nil:
		learned, err := s.cfg.GridKeys.GridKey(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errAskingGridKey, err)
		}
		if len(learned) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: the grid answered a key of %d bytes", ErrNoGridKey, len(learned))
		}
		key = learned
		s.log.Info("grid_key_learned", "key", hex.EncodeToString(key))
	default:
		return nil, fmt.Errorf("%w: pass zos node --grid-key", ErrNoGridKey)
	}
	if s.cfg.GridKeyFile != "" && !key.Equal(kept) {
		if err := atomicfile.WriteFile(s.cfg.GridKeyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("keeping the grid billing key: %w", err)
		}
	}
	s.key = key
	return key, nil
}

// contractState applies the grid's billing state change of a contract of
// this node once the grid's billing key shows it signed it; a forged or
// foreign change is logged and ignored, an older one than applied too.
// Only failing to ask the grid for its key is an error: the event is then
// handled again when the loop restarts. Without any key (none pinned,
// kept or to ask for) the change cannot be verified: it is logged and
// ignored, and the events after it (cancellations) go on.
func (s *Sync) contractState(ctx context.Context, c billing.StateChange) error {
	log := s.log.With("contract", c.ContractID, "state", c.State, "seq", c.Seq)
	key, err := s.gridKey(ctx)
	if errors.Is(err, errAskingGridKey) {
		return err
	}
	if err != nil {
		log.Error("contract_state_unverifiable", "err", err)
		return nil
	}
	if err := billing.Verify(c, key); err != nil {
		log.Error("contract_state_rejected", "err", err)
		return nil
	}
	if c.NodeID != s.cfg.NodeID {
		log.Error("contract_state_rejected", "err", fmt.Sprintf("the change is for node %d", c.NodeID))
		return nil
	}
	err = s.deps.ApplyContractState(c)
	switch {
	case err == nil:
		log.Info("contract_state_applied")
	case errors.Is(err, provision.ErrStale):
		log.Info("contract_state_stale", "err", err)
	case errors.Is(err, provision.ErrNotFound):
		log.Info("contract_state_unknown_contract")
	default:
		log.Error("contract_state_failed", "err", err)
	}
	return nil
}
