package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/zos-go/zos/internal/identity"
)

// Bounds of a node registration.
const (
	maxInterfaces = 64
	maxUsedReport = 10000
	// maxUpdateFailed bounds a node's failed-update list.
	maxUpdateFailed = 16
	// maxFeatures bounds a node's feature list, maxFeatureLen a feature.
	maxFeatures   = 64
	maxFeatureLen = 64
)

func (s *Service) node(ctx context.Context, id uint32) (Node, error) {
	return getByID[Node](ctx, s.st.nodes, "node", uint64(id))
}

func (s *Service) farm(ctx context.Context, id uint32) (Farm, error) {
	return getByID[Farm](ctx, s.st.farms, "farm", uint64(id))
}

func (s *Service) nodeRegister(ctx context.Context, w *signedRequest, req NodeRegistration) (any, error) {
	signer := w.Key
	if len(req.Interfaces) > maxInterfaces || len(req.Version) > 128 || len(req.UpdateFailed) > maxUpdateFailed {
		return nil, fmt.Errorf("%w: too many interfaces or failed updates, or version too long", ErrInvalid)
	}
	for _, v := range req.UpdateFailed {
		if len(v) > 128 {
			return nil, fmt.Errorf("%w: failed update version too long", ErrInvalid)
		}
	}
	if len(req.Features) > maxFeatures {
		return nil, fmt.Errorf("%w: %d features, limit %d", ErrInvalid, len(req.Features), maxFeatures)
	}
	for _, f := range req.Features {
		if f == "" || len(f) > maxFeatureLen {
			return nil, fmt.Errorf("%w: feature %q is empty or longer than %d bytes", ErrInvalid, f, maxFeatureLen)
		}
	}
	if err := req.Location.Check(); err != nil {
		return nil, err
	}
	if err := req.Firmware.check(); err != nil {
		return nil, err
	}
	if err := req.Total.check("total"); err != nil {
		return nil, err
	}
	if err := req.Reserved.check("reserved"); err != nil {
		return nil, err
	}
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	farm, err := s.farm(ctx, req.FarmID)
	if err != nil {
		return nil, fmt.Errorf("registering node: %w", err)
	}
	// consent is nil when the farmer let the node in; a node already in
	// the farm needs no consent.
	consent := s.farmConsent(ctx, req.FarmToken, farm)
	now := s.cfg.Now().UTC()
	// A node that moves: the farm it leaves, and whether its public
	// config was cleared.
	var from uint32
	cleared := false
	apply := func(n *Node) error {
		from, cleared = 0, false
		if n.FarmID != req.FarmID {
			if consent != nil {
				return consent
			}
			// What the farmer set belongs to the farm the node leaves.
			from, cleared = n.FarmID, n.PublicConfig != nil
			n.PublicConfig = nil
			n.PowerTarget = ""
			n.LocationByFarmer = false
		}
		n.FarmID = req.FarmID
		n.Total = req.Total
		n.Reserved = req.Reserved
		if !n.LocationByFarmer {
			n.Location = req.Location
		}
		n.Interfaces = req.Interfaces
		n.Virtualized = req.Virtualized
		n.Features = req.Features
		n.Firmware = req.Firmware
		n.Version = req.Version
		n.UpdateFailed = req.UpdateFailed
		return nil
	}
	idxKey := fmt.Sprintf("nodetwin.%d", twin.ID)
	for range casRetries {
		id, err := s.st.indexGet(ctx, idxKey)
		if err == nil {
			n, err := update(ctx, s.st.nodes, idKey(id), apply)
			if errors.Is(err, ErrNotFound) {
				// The index is there without its record (a concurrent
				// registration, or a crash in between): write it.
				n = Node{ID: uint32(id), TwinID: twin.ID, Created: now, Updated: now, Power: PowerUp}
				if err := apply(&n); err != nil {
					return nil, fmt.Errorf("registering node: %w", err)
				}
				err = putJSON(ctx, s.st.nodes, idKey(id), 0, n)
				if errors.Is(err, ErrExists) {
					continue
				}
			}
			if err != nil {
				return nil, fmt.Errorf("registering node %d: %w", id, err)
			}
			if from != 0 {
				s.log.Info("node_moved", "node_id", n.ID, "from_farm_id", from, "farm_id", n.FarmID)
			}
			if cleared {
				s.publish(ctx, EventPublicConfigChanged, n.ID, nil)
			}
			return n, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if consent != nil {
			return nil, fmt.Errorf("registering node: %w", consent)
		}
		id, err = s.st.nextID(ctx, "node")
		if err != nil {
			return nil, fmt.Errorf("registering node: %w", err)
		}
		if err := s.st.indexCreate(ctx, idxKey, id); errors.Is(err, ErrExists) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("registering node: %w", err)
		}
		n := Node{ID: uint32(id), TwinID: twin.ID, Created: now, Updated: now, Power: PowerUp}
		_ = apply(&n)
		if err := putJSON(ctx, s.st.nodes, idKey(id), 0, n); err != nil {
			return nil, fmt.Errorf("registering node: %w", err)
		}
		s.log.Info("node_registered", "node_id", n.ID, "farm_id", n.FarmID, "twin_id", twin.ID)
		return n, nil
	}
	return nil, fmt.Errorf("registering node: %w", errConflict)
}

// farmConsent checks a farm token presented to join farm: nil when it is
// a token of that farm, signed by the farm twin's key and not expired.
func (s *Service) farmConsent(ctx context.Context, token string, farm Farm) error {
	if token == "" {
		return fmt.Errorf("%w: joining farm %d needs a farm token from its farmer (zosctl farm token %d)", ErrUnauthorized, farm.ID, farm.ID)
	}
	t, err := ParseFarmToken(token)
	if err != nil {
		return err
	}
	if t.FarmID != farm.ID {
		return fmt.Errorf("%w: farm token %s is for farm %d, not farm %d", ErrUnauthorized, t.IDHex(), t.FarmID, farm.ID)
	}
	owner, err := s.twinByID(ctx, uint64(farm.TwinID), false)
	if err != nil {
		return fmt.Errorf("reading the twin of farm %d: %w", farm.ID, err)
	}
	pub, err := identity.ParsePublic(owner.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: key of twin %d: %v", ErrInternal, owner.ID, err)
	}
	return t.Verify(pub, s.cfg.Now())
}

// updateOwnNode applies f to a node the signer's twin owns.
func (s *Service) updateOwnNode(ctx context.Context, signer string, id uint32, f func(*Node) error) (Node, error) {
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return Node{}, err
	}
	n, err := update(ctx, s.st.nodes, idKey(uint64(id)), func(n *Node) error {
		if n.TwinID != twin.ID {
			return fmt.Errorf("%w: node %d belongs to twin %d, not %d", ErrUnauthorized, n.ID, n.TwinID, twin.ID)
		}
		return f(n)
	})
	if errors.Is(err, ErrNotFound) {
		return Node{}, fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	return n, err
}

func (s *Service) nodeUptime(ctx context.Context, w *signedRequest, req nodeUptimeReq) (any, error) {
	signer := w.Key
	now := s.cfg.Now().UTC()
	_, err := s.updateOwnNode(ctx, signer, req.NodeID, func(n *Node) error {
		n.Uptime = req.Uptime
		n.Updated = now
		n.Power = PowerUp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reporting uptime of node %d: %w", req.NodeID, err)
	}
	return struct{}{}, nil
}

func validPublicConfig(c *PublicConfig) error {
	if c == nil {
		return nil
	}
	check := func(cidr, gw string, v4 bool) error {
		if cidr == "" && gw == "" {
			return nil
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil || p.Addr().Is4() != v4 {
			return fmt.Errorf("%w: public config address %q", ErrInvalid, cidr)
		}
		g, err := netip.ParseAddr(gw)
		if err != nil || !p.Masked().Contains(g) {
			return fmt.Errorf("%w: public config gateway %q not in %s", ErrInvalid, gw, cidr)
		}
		return nil
	}
	if err := check(c.IPv4, c.GW4, true); err != nil {
		return err
	}
	if err := check(c.IPv6, c.GW6, false); err != nil {
		return err
	}
	if len(c.Domain) > 255 {
		return fmt.Errorf("%w: domain too long", ErrInvalid)
	}
	return nil
}

// farmerNode returns a node whose farm belongs to the signer's twin: only
// the farmer sets a node's public config and power target.
func (s *Service) farmerNode(ctx context.Context, signer string, nodeID uint32) (Node, error) {
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return Node{}, err
	}
	n, err := s.node(ctx, nodeID)
	if err != nil {
		return Node{}, err
	}
	f, err := s.farm(ctx, n.FarmID)
	if err != nil {
		return Node{}, err
	}
	if f.TwinID != twin.ID {
		return Node{}, fmt.Errorf("%w: node %d is in farm %d of twin %d, not %d", ErrUnauthorized, n.ID, f.ID, f.TwinID, twin.ID)
	}
	return n, nil
}

// updateFarmerNode applies set to a node whose farm belongs to the
// signer's twin (the farmer's settings: public config, power target) and
// sends the node an event of kind; what names the setting in errors. It
// answers as the handler of the setting does.
func (s *Service) updateFarmerNode(ctx context.Context, signer string, nodeID uint32, what, kind string, set func(*Node)) (any, error) {
	owned, err := s.farmerNode(ctx, signer, nodeID)
	if err != nil {
		return nil, err
	}
	if err := s.setFarmerNode(ctx, owned, what, kind, set); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// setFarmerNode applies set to owned, a node farmerNode returned, and
// sends the node an event of kind. The farm is checked again in the
// write: a node that moved to another farm since farmerNode is refused
// with ErrConflict, so the old farmer cannot set what belongs to the new
// one.
func (s *Service) setFarmerNode(ctx context.Context, owned Node, what, kind string, set func(*Node)) error {
	_, err := update(ctx, s.st.nodes, idKey(uint64(owned.ID)), func(n *Node) error {
		if n.FarmID != owned.FarmID {
			return fmt.Errorf("%w: node %d moved to farm %d", ErrConflict, n.ID, n.FarmID)
		}
		set(n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("setting %s of node %d: %w", what, owned.ID, err)
	}
	s.publish(ctx, kind, owned.ID, nil)
	return nil
}

func (s *Service) nodePublicConfig(ctx context.Context, w *signedRequest, req nodePublicConfigReq) (any, error) {
	if err := validPublicConfig(req.Config); err != nil {
		return nil, err
	}
	return s.updateFarmerNode(ctx, w.Key, req.NodeID, "public config", EventPublicConfigChanged, func(n *Node) { n.PublicConfig = req.Config })
}

func (s *Service) nodeUsed(ctx context.Context, w *signedRequest, req nodeUsedReq) (any, error) {
	signer := w.Key
	if len(req.Used) > maxUsedReport {
		return nil, fmt.Errorf("%w: %d contracts in one report, limit %d", ErrInvalid, len(req.Used), maxUsedReport)
	}
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	n, err := s.node(ctx, req.NodeID)
	if err != nil {
		return nil, err
	}
	if n.TwinID != twin.ID {
		return nil, fmt.Errorf("%w: node %d belongs to twin %d, not %d", ErrUnauthorized, n.ID, n.TwinID, twin.ID)
	}
	// Every value and the node's sum stay within MaxResource, so the sum
	// cannot wrap around.
	var sum Resources
	for id, r := range req.Used {
		if err := r.check(fmt.Sprintf("used of contract %d", id)); err != nil {
			return nil, err
		}
		sum = Resources{CRU: sum.CRU + r.CRU, MRU: sum.MRU + r.MRU, SRU: sum.SRU + r.SRU, HRU: sum.HRU + r.HRU}
		if err := sum.check(fmt.Sprintf("used of node %d", req.NodeID)); err != nil {
			return nil, err
		}
	}
	for id, r := range req.Used {
		_, err := update(ctx, s.st.contracts, idKey(id), func(c *Contract) error {
			if c.NodeID != req.NodeID {
				return fmt.Errorf("%w: contract %d is not on node %d", ErrUnauthorized, id, req.NodeID)
			}
			c.Used = r
			return nil
		})
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: contract %d", ErrNotFound, id)
		}
		if err != nil {
			return nil, fmt.Errorf("reporting use of contract %d: %w", id, err)
		}
	}
	if _, err := s.updateOwnNode(ctx, signer, req.NodeID, func(n *Node) error { n.Used = sum; return nil }); err != nil {
		return nil, fmt.Errorf("reporting use of node %d: %w", req.NodeID, err)
	}
	return struct{}{}, nil
}

func validPower(p string) error {
	if p != PowerUp && p != PowerDown {
		return fmt.Errorf("%w: power %q: want %q or %q", ErrInvalid, p, PowerUp, PowerDown)
	}
	return nil
}
