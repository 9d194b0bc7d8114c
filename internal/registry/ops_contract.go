package registry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
)

// Bounds of a contract.
const (
	maxMetadata     = 64 << 10
	maxContractIPs  = 64
	maxDeploymentHx = 128
)

func validHash(h string) error {
	if h == "" || len(h) > maxDeploymentHx {
		return fmt.Errorf("%w: deployment hash must be 1 to %d hex characters", ErrInvalid, maxDeploymentHx)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("%w: deployment hash %q is not hex", ErrInvalid, h)
	}
	return nil
}

func (s *Service) contract(ctx context.Context, id uint64) (Contract, error) {
	return getByID[Contract](ctx, s.st.contracts, "contract", id)
}

// checkRent refuses a node rented by another twin.
func (s *Service) checkRent(ctx context.Context, node, twin uint32) error {
	id, err := s.st.indexGet(ctx, fmt.Sprintf("rent.%d", node))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := s.contract(ctx, id)
	if errors.Is(err, ErrNotFound) {
		// A rent being created (it checks the node's contracts after
		// writing its record) or undone.
		return nil
	}
	if err != nil {
		return err
	}
	if c.State != StateCreated || c.TwinID == twin {
		return nil
	}
	return fmt.Errorf("%w: node %d is rented by twin %d (contract %d)", ErrNodeRented, node, c.TwinID, c.ID)
}

// checkTenants refuses renting a node that runs node contracts of twins
// other than the renter.
func (s *Service) checkTenants(ctx context.Context, node, renter uint32) error {
	others, err := list(ctx, s.st.contracts, 0, func(c *Contract) uint64 { return c.ID }, func(c *Contract) bool {
		return c.Type == TypeNode && c.NodeID == node && c.State == StateCreated && c.TwinID != renter
	})
	if err != nil {
		return err
	}
	if len(others) > 0 {
		return fmt.Errorf("%w: node %d runs contracts of other twins (contract %d of twin %d)", ErrUnauthorized, node, others[0].ID, others[0].TwinID)
	}
	return nil
}

func (s *Service) contractCreate(ctx context.Context, w *signedRequest, req contractCreateReq) (any, error) {
	signer := w.Key
	if err := validHash(req.Hash); err != nil {
		return nil, err
	}
	if len(req.Metadata) > maxMetadata || req.PublicIPs > maxContractIPs {
		return nil, fmt.Errorf("%w: metadata over %d bytes or more than %d public ips", ErrInvalid, maxMetadata, maxContractIPs)
	}
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	n, err := s.node(ctx, req.NodeID)
	if err != nil {
		return nil, fmt.Errorf("creating contract: %w", err)
	}
	if err := s.checkRent(ctx, n.ID, twin.ID); err != nil {
		return nil, err
	}
	id, err := s.st.nextID(ctx, "contract")
	if err != nil {
		return nil, fmt.Errorf("creating contract: %w", err)
	}
	now := s.cfg.Now().UTC()
	c := Contract{ID: id, Type: TypeNode, TwinID: twin.ID, State: StateCreated, NodeID: n.ID,
		DeploymentHash: req.Hash, Metadata: req.Metadata, PublicIPsCount: req.PublicIPs, Created: now, Updated: now, Proof: w}
	if req.PublicIPs > 0 {
		ips, err := s.reserveIPs(ctx, n.FarmID, id, int(req.PublicIPs))
		if err != nil {
			return nil, fmt.Errorf("creating contract: %w", err)
		}
		c.PublicIPs = ips
		c.FarmID = n.FarmID
	}
	undo := func() {
		if len(c.PublicIPs) > 0 {
			if rerr := s.releaseIPs(ctx, c.FarmID, id); rerr != nil {
				s.log.Error("release_ips_failed", "contract_id", id, "err", rerr)
			}
		}
	}
	if err := putJSON(ctx, s.st.contracts, idKey(id), 0, c); err != nil {
		undo()
		return nil, fmt.Errorf("creating contract: %w", err)
	}
	// A rent of another twin that began after the check above checks the
	// node's contracts after writing its own record: one of the two sees
	// the other.
	if err := s.checkRent(ctx, n.ID, twin.ID); err != nil {
		if derr := s.st.contracts.Delete(ctx, idKey(id)); derr != nil {
			s.log.Error("contract_undo_failed", "contract_id", id, "err", derr)
		}
		undo()
		return nil, err
	}
	s.publish(ctx, EventContractCreated, c.NodeID, &c)
	return c, nil
}

// reserveIPs marks n free IPs of a farm as used by contract id, all or
// none (one compare-and-set of the farm record).
func (s *Service) reserveIPs(ctx context.Context, farm uint32, id uint64, n int) ([]PublicIP, error) {
	var got []PublicIP
	_, err := update(ctx, s.st.farms, idKey(uint64(farm)), func(f *Farm) error {
		got = got[:0]
		for i := range f.PublicIPs {
			if len(got) == n {
				break
			}
			if f.PublicIPs[i].ContractID == 0 {
				f.PublicIPs[i].ContractID = id
				got = append(got, f.PublicIPs[i])
			}
		}
		if len(got) < n {
			return fmt.Errorf("%w: farm %d has %d free, %d asked", ErrNoFreeIP, farm, len(got), n)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: farm %d", ErrNotFound, farm)
	}
	return got, err
}

// releaseIPs frees the IPs of a farm that contract id holds.
func (s *Service) releaseIPs(ctx context.Context, farm uint32, id uint64) error {
	_, err := update(ctx, s.st.farms, idKey(uint64(farm)), func(f *Farm) error {
		for i := range f.PublicIPs {
			if f.PublicIPs[i].ContractID == id {
				f.PublicIPs[i].ContractID = 0
			}
		}
		return nil
	})
	return err
}

// updateOwnContract applies f to a live contract of the signer's twin.
func (s *Service) updateOwnContract(ctx context.Context, signer string, id uint64, f func(*Contract) error) (Contract, error) {
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return Contract{}, err
	}
	now := s.cfg.Now().UTC()
	c, err := update(ctx, s.st.contracts, idKey(id), func(c *Contract) error {
		if c.TwinID != twin.ID {
			return fmt.Errorf("%w: contract %d belongs to twin %d, not %d", ErrUnauthorized, c.ID, c.TwinID, twin.ID)
		}
		if c.State == StateCanceled {
			return fmt.Errorf("%w: contract %d", ErrCanceled, c.ID)
		}
		c.Updated = now
		return f(c)
	})
	if errors.Is(err, ErrNotFound) {
		return Contract{}, fmt.Errorf("%w: contract %d", ErrNotFound, id)
	}
	return c, err
}

func (s *Service) contractUpdate(ctx context.Context, w *signedRequest, req contractUpdateReq) (any, error) {
	signer := w.Key
	if err := validHash(req.Hash); err != nil {
		return nil, err
	}
	if len(req.Metadata) > maxMetadata {
		return nil, fmt.Errorf("%w: metadata over %d bytes", ErrInvalid, maxMetadata)
	}
	c, err := s.updateOwnContract(ctx, signer, req.ID, func(c *Contract) error {
		if c.Type != TypeNode {
			return fmt.Errorf("%w: contract %d is a %s contract, not a node contract", ErrInvalid, c.ID, c.Type)
		}
		c.DeploymentHash = req.Hash
		c.Metadata = req.Metadata
		c.Proof = w
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("updating contract %d: %w", req.ID, err)
	}
	s.publish(ctx, EventContractUpdated, c.NodeID, &c)
	return c, nil
}

func (s *Service) contractCancel(ctx context.Context, w *signedRequest, req contractIDReq) (any, error) {
	signer := w.Key
	c, err := s.updateOwnContract(ctx, signer, req.ID, func(c *Contract) error {
		c.State = StateCanceled
		c.Proof = w
		return nil
	})
	if errors.Is(err, ErrCanceled) {
		// Canceled before: finish the cleanup in case that cancel was
		// interrupted, and still report it.
		if c, rerr := s.contract(ctx, req.ID); rerr == nil {
			if rerr := s.releaseContract(ctx, c); rerr != nil {
				s.log.Error("release_contract_failed", "contract_id", c.ID, "err", rerr)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("canceling contract %d: %w", req.ID, err)
	}
	if err := s.releaseContract(ctx, c); err != nil {
		return nil, fmt.Errorf("canceling contract %d: %w", c.ID, err)
	}
	if c.NodeID != 0 {
		s.publish(ctx, EventContractCanceled, c.NodeID, &c)
	}
	return c, nil
}

// releaseContract frees what a canceled contract held: its public IPs, its
// name or its node. It is idempotent.
func (s *Service) releaseContract(ctx context.Context, c Contract) error {
	switch c.Type {
	case TypeNode:
		if len(c.PublicIPs) > 0 {
			// To the farm they came from; contracts written before
			// FarmID was recorded give them back to the node's farm.
			farm := c.FarmID
			if farm == 0 {
				n, err := s.node(ctx, c.NodeID)
				if err != nil {
					return fmt.Errorf("releasing public ips: %w", err)
				}
				farm = n.FarmID
			}
			if err := s.releaseIPs(ctx, farm, c.ID); err != nil {
				return fmt.Errorf("releasing public ips of farm %d: %w", farm, err)
			}
		}
	case TypeName:
		// Only if the name still points at this contract.
		if id, err := s.st.indexGet(ctx, "name."+c.Name); err == nil && id == c.ID {
			return s.st.indexDelete(ctx, "name."+c.Name)
		}
	case TypeRent:
		key := fmt.Sprintf("rent.%d", c.NodeID)
		if id, err := s.st.indexGet(ctx, key); err == nil && id == c.ID {
			return s.st.indexDelete(ctx, key)
		}
	}
	return nil
}

func (s *Service) nameCreate(ctx context.Context, w *signedRequest, req nameCreateReq) (any, error) {
	signer := w.Key
	if !validName(req.Name, 63, true) {
		return nil, fmt.Errorf("%w: name %q: want 1 to 63 of a-z 0-9 -", ErrInvalid, req.Name)
	}
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.indexGet(ctx, "name."+req.Name); err == nil {
		return nil, fmt.Errorf("%w: %q", ErrNameTaken, req.Name)
	}
	id, err := s.st.nextID(ctx, "contract")
	if err != nil {
		return nil, fmt.Errorf("reserving name: %w", err)
	}
	if err := s.st.indexCreate(ctx, "name."+req.Name, id); errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("%w: %q", ErrNameTaken, req.Name)
	} else if err != nil {
		return nil, fmt.Errorf("reserving name: %w", err)
	}
	now := s.cfg.Now().UTC()
	c := Contract{ID: id, Type: TypeName, TwinID: twin.ID, State: StateCreated, Name: req.Name, Created: now, Updated: now, Proof: w}
	if err := putJSON(ctx, s.st.contracts, idKey(id), 0, c); err != nil {
		_ = s.st.indexDelete(ctx, "name."+req.Name)
		return nil, fmt.Errorf("reserving name: %w", err)
	}
	return c, nil
}

func (s *Service) rentCreate(ctx context.Context, w *signedRequest, req rentCreateReq) (any, error) {
	signer := w.Key
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	n, err := s.node(ctx, req.NodeID)
	if err != nil {
		return nil, fmt.Errorf("renting node: %w", err)
	}
	if err := s.checkRent(ctx, n.ID, 0); err != nil {
		return nil, err
	}
	id, err := s.st.nextID(ctx, "contract")
	if err != nil {
		return nil, fmt.Errorf("renting node: %w", err)
	}
	key := fmt.Sprintf("rent.%d", n.ID)
	if err := s.st.indexCreate(ctx, key, id); errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("%w: node %d is already rented", ErrNodeRented, n.ID)
	} else if err != nil {
		return nil, fmt.Errorf("renting node: %w", err)
	}
	now := s.cfg.Now().UTC()
	c := Contract{ID: id, Type: TypeRent, TwinID: twin.ID, State: StateCreated, NodeID: n.ID, Created: now, Updated: now, Proof: w}
	if err := putJSON(ctx, s.st.contracts, idKey(id), 0, c); err != nil {
		_ = s.st.indexDelete(ctx, key)
		return nil, fmt.Errorf("renting node: %w", err)
	}
	// Checked once the rent is written: a node contract of another twin
	// created meanwhile either sees this rent or is seen here.
	if err := s.checkTenants(ctx, n.ID, twin.ID); err != nil {
		if derr := s.st.contracts.Delete(ctx, idKey(id)); derr != nil {
			s.log.Error("contract_undo_failed", "contract_id", id, "err", derr)
		}
		if derr := s.st.indexDelete(ctx, key); derr != nil {
			s.log.Error("contract_undo_failed", "contract_id", id, "err", derr)
		}
		return nil, fmt.Errorf("renting node: %w", err)
	}
	s.publish(ctx, EventContractCreated, c.NodeID, &c)
	return c, nil
}
