package gridtypes

import (
	"bytes"
	"fmt"
)

// OpKind is what an update does to a workload.
type OpKind string

// Update operations.
const (
	OpAdd    OpKind = "add"
	OpUpdate OpKind = "update"
	OpRemove OpKind = "remove"
)

// Op is one step of an update.
type Op struct {
	Kind     OpKind
	Workload *Workload // from new for add and update, from old for remove
}

// Upgrade computes how to go from old to new, or why it is not allowed.
// new must be valid, keep the twin and contract, and have version old+1. A
// workload of new whose name is unknown must carry the new version (add); a
// known name with the new version is an update (same type, and only of an
// updatable type); a known name with an older version must be unchanged; a
// name missing from new is removed. Removals come first, in reverse order of
// old, then adds and updates in the order of new.
func Upgrade(old, new *Deployment) ([]Op, error) {
	if err := new.Valid(); err != nil {
		return nil, err
	}
	if new.TwinID != old.TwinID {
		return nil, fmt.Errorf("cannot change the twin of a deployment (%d to %d)", old.TwinID, new.TwinID)
	}
	if new.ContractID != old.ContractID {
		return nil, fmt.Errorf("cannot change the contract of a deployment (%d to %d)", old.ContractID, new.ContractID)
	}
	if new.Version != old.Version+1 {
		return nil, fmt.Errorf("version must be %d (current %d + 1), got %d", old.Version+1, old.Version, new.Version)
	}
	var ops []Op
	for i := len(old.Workloads) - 1; i >= 0; i-- {
		if new.Get(old.Workloads[i].Name) == nil {
			ops = append(ops, Op{Kind: OpRemove, Workload: &old.Workloads[i]})
		}
	}
	for i := range new.Workloads {
		wl := &new.Workloads[i]
		prev := old.Get(wl.Name)
		switch {
		case prev == nil:
			if wl.Version != new.Version {
				return nil, fmt.Errorf("workload %q: a new workload must have version %d, got %d", wl.Name, new.Version, wl.Version)
			}
			ops = append(ops, Op{Kind: OpAdd, Workload: wl})
		case wl.Version == new.Version:
			if wl.Type != prev.Type {
				return nil, fmt.Errorf("workload %q: cannot change type from %s to %s", wl.Name, prev.Type, wl.Type)
			}
			if !wl.Type.Updatable() {
				return nil, fmt.Errorf("workload %q: a %s cannot be updated, remove it and add a new one", wl.Name, wl.Type)
			}
			ops = append(ops, Op{Kind: OpUpdate, Workload: wl})
		default:
			if wl.Version != prev.Version {
				return nil, fmt.Errorf("workload %q: version %d does not match the current %d", wl.Name, wl.Version, prev.Version)
			}
			same, err := sameChallenge(prev, wl)
			if err != nil {
				return nil, err
			}
			if !same {
				return nil, fmt.Errorf("workload %q: changed without raising its version to %d", wl.Name, new.Version)
			}
		}
	}
	return ops, nil
}

func sameChallenge(a, b *Workload) (bool, error) {
	var ba, bb bytes.Buffer
	if err := a.Challenge(&ba); err != nil {
		return false, err
	}
	if err := b.Challenge(&bb); err != nil {
		return false, err
	}
	return bytes.Equal(ba.Bytes(), bb.Bytes()), nil
}
