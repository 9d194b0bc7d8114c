package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// awakeWindow is how recently a node must have reported uptime to count
// as awake (two of its 40-minute reports, as the explorer's up window).
const awakeWindow = 2 * 40 * time.Minute

// PowerPolicy is a farm's power policy: the grid keeps at least MinAwake
// nodes and MinFree free capacity (total - reserved - used, summed over
// the awake nodes) awake, puts idle nodes beyond that to standby and
// wakes a standby node when the awake ones fall short.
type PowerPolicy struct {
	MinAwake uint32    `json:"min_awake"`
	MinFree  Resources `json:"min_free"`
}

// Wake is what an awake node needs to wake a node of its farm by
// Wake-on-LAN: the node, its farm and the MACs it registered.
type Wake struct {
	NodeID uint32   `json:"node_id"`
	FarmID uint32   `json:"farm_id"`
	MACs   []string `json:"macs"`
}

// PowerAction is one change a policy asks for: Target is PowerUp (wake
// the node) or PowerDown (standby).
type PowerAction struct {
	NodeID uint32
	Target string
}

// awake reports whether n counts as awake at now: it reported uptime
// recently, is not in standby, and is not going (its target is not down,
// or it refused).
func awake(n *Node, now time.Time) bool {
	return n.Power != PowerDown && (n.PowerTarget != PowerDown || n.PowerRefused != "") && now.Sub(n.Updated) <= awakeWindow
}

// free is what of n is free for deployments.
func free(n *Node) Resources {
	sub := func(a, b, c uint64) uint64 {
		if b+c >= a {
			return 0
		}
		return a - b - c
	}
	return Resources{CRU: sub(n.Total.CRU, n.Reserved.CRU, n.Used.CRU), MRU: sub(n.Total.MRU, n.Reserved.MRU, n.Used.MRU),
		SRU: sub(n.Total.SRU, n.Reserved.SRU, n.Used.SRU), HRU: sub(n.Total.HRU, n.Reserved.HRU, n.Used.HRU)}
}

// covers reports whether r is at least want in every unit.
func (r Resources) covers(want Resources) bool {
	return r.CRU >= want.CRU && r.MRU >= want.MRU && r.SRU >= want.SRU && r.HRU >= want.HRU
}

// minus is r-o, each unit at least 0.
func (r Resources) minus(o Resources) Resources {
	sub := func(a, b uint64) uint64 {
		if b >= a {
			return 0
		}
		return a - b
	}
	return Resources{CRU: sub(r.CRU, o.CRU), MRU: sub(r.MRU, o.MRU), SRU: sub(r.SRU, o.SRU), HRU: sub(r.HRU, o.HRU)}
}

// PlanPower is what policy p asks of a farm's nodes at now, one change at
// a time so that each takes effect before the next is decided: when the
// awake nodes are fewer than MinAwake or their free capacity is below
// MinFree, wake the standby node with the lowest id (none when a wake is
// already under way); otherwise put to standby the idle awake node (no
// active contracts: busy[id] false, nothing used) with the highest id
// whose absence still meets the policy. nodes are the farm's; a node in
// neither state (offline, not in standby) is left alone.
func PlanPower(p PowerPolicy, nodes []Node, busy map[uint32]bool, now time.Time) []PowerAction {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	var (
		up      []*Node
		standby []*Node
		sum     Resources
		waking  bool
	)
	for i := range nodes {
		n := &nodes[i]
		switch {
		case awake(n, now):
			up = append(up, n)
			sum = sum.Plus(free(n))
		case n.Power == PowerDown && n.PowerTarget == PowerUp:
			waking = true
		case n.Power == PowerDown:
			standby = append(standby, n)
		}
	}
	if uint32(len(up)) < p.MinAwake || !sum.covers(p.MinFree) {
		if waking || len(standby) == 0 {
			return nil
		}
		return []PowerAction{{NodeID: standby[0].ID, Target: PowerUp}}
	}
	for i := len(up) - 1; i >= 0; i-- {
		n := up[i]
		if busy[n.ID] || n.Used != (Resources{}) || n.PowerRefused != "" {
			continue
		}
		if uint32(len(up)-1) >= p.MinAwake && sum.minus(free(n)).covers(p.MinFree) {
			return []PowerAction{{NodeID: n.ID, Target: PowerDown}}
		}
	}
	return nil
}

// powerLoop applies the farms' power policies every cfg.PowerEvery, once
// per round in a cluster (a key in the nonces bucket, which expires, claims
// the round). A failure is logged and tried again on the next round.
func (s *Service) powerLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PowerEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// In a cluster every member runs the loop; the first to claim
		// the round applies it.
		round := s.cfg.Now().UnixNano() / int64(s.cfg.PowerEvery)
		if _, err := s.st.nonces.Create(ctx, fmt.Sprintf("power-round_%d", round), nil); err != nil {
			continue
		}
		if err := s.applyPolicies(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("power_policy_failed", "err", err)
		}
	}
}

// applyPolicies runs PlanPower on every farm with a policy and applies
// its actions as the farmer's power target would.
func (s *Service) applyPolicies(ctx context.Context) error {
	farms, err := list(ctx, s.st.farms, 0, func(f *Farm) uint64 { return uint64(f.ID) }, func(f *Farm) bool { return f.PowerPolicy != nil })
	if err != nil || len(farms) == 0 {
		return err
	}
	nodes, err := list(ctx, s.st.nodes, 0, func(n *Node) uint64 { return uint64(n.ID) }, nil)
	if err != nil {
		return err
	}
	contracts, err := list(ctx, s.st.contracts, 0, func(c *Contract) uint64 { return c.ID }, func(c *Contract) bool {
		return c.State != StateCanceled && c.NodeID != 0
	})
	if err != nil {
		return err
	}
	busy := map[uint32]bool{}
	for _, c := range contracts {
		busy[c.NodeID] = true
	}
	now := s.cfg.Now()
	for _, f := range farms {
		var in []Node
		for _, n := range nodes {
			if n.FarmID == f.ID {
				in = append(in, n)
			}
		}
		for _, a := range PlanPower(*f.PowerPolicy, in, busy, now) {
			s.log.Info("power_policy", "farm_id", f.ID, "node_id", a.NodeID, "target", a.Target)
			res, err := s.setPowerTarget(ctx, a.NodeID, f.ID, a.Target)
			if err != nil || res.Note != "" {
				s.log.Warn("power_policy_action_failed", "farm_id", f.ID, "node_id", a.NodeID, "err", err, "note", res.Note)
			}
		}
	}
	return nil
}

// farmPowerPolicy sets or clears a farm's power policy: the farm's twin
// only.
func (s *Service) farmPowerPolicy(ctx context.Context, w *signedRequest, req farmPowerPolicyReq) (any, error) {
	if p := req.Policy; p != nil {
		if err := p.MinFree.check("policy min free"); err != nil {
			return nil, err
		}
		if p.MinAwake == 0 && p.MinFree == (Resources{}) {
			return nil, fmt.Errorf("%w: a power policy keeps at least one node or some capacity awake (min_awake 0 and no min_free would put every idle node to standby)", ErrInvalid)
		}
	}
	twin, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	f, err := update(ctx, s.st.farms, idKey(uint64(req.FarmID)), func(f *Farm) error {
		if f.TwinID != twin.ID {
			return fmt.Errorf("%w: farm %d belongs to twin %d, not %d", ErrUnauthorized, f.ID, f.TwinID, twin.ID)
		}
		f.PowerPolicy = req.Policy
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: farm %d", ErrNotFound, req.FarmID)
	}
	if err != nil {
		return nil, fmt.Errorf("setting the power policy of farm %d: %w", req.FarmID, err)
	}
	return f, nil
}

// PowerTargetResult answers a power target: for a node in standby asked
// up, the awake node of its farm asked to wake it (WakeVia), or why none
// could be (Note: the target is set all the same, for a node woken by
// hand).
type PowerTargetResult struct {
	NodeID  uint32 `json:"node_id"`
	Target  string `json:"target"`
	WakeVia uint32 `json:"wake_via,omitempty"`
	Note    string `json:"note,omitempty"`
}

// nodePowerTarget records what the farmer wants of a node's power and
// tells the node; a node in standby asked up is woken by an awake node
// of its farm.
func (s *Service) nodePowerTarget(ctx context.Context, w *signedRequest, req nodePowerReq) (any, error) {
	if err := validPower(req.Power); err != nil {
		return nil, err
	}
	owned, err := s.farmerNode(ctx, w.Key, req.NodeID)
	if err != nil {
		return nil, err
	}
	return s.setPowerTarget(ctx, owned.ID, owned.FarmID, req.Power)
}

// setPowerTarget sets the power target of node (in farm), sends it the
// event, and for a node in standby asked up, sends EventWake to an awake
// node of the farm.
func (s *Service) setPowerTarget(ctx context.Context, node, farm uint32, target string) (PowerTargetResult, error) {
	res := PowerTargetResult{NodeID: node, Target: target}
	var wake Wake
	if target == PowerUp {
		n, err := s.node(ctx, node)
		if err != nil {
			return res, err
		}
		if n.Power == PowerDown {
			wake = Wake{NodeID: n.ID, FarmID: n.FarmID}
			for _, i := range n.Interfaces {
				if i.MAC != "" {
					wake.MACs = append(wake.MACs, i.MAC)
				}
			}
			if res.WakeVia, err = s.wakePeer(ctx, n, len(wake.MACs) > 0); err != nil {
				res.Note = err.Error()
			}
		}
	}
	err := s.setFarmerNode(ctx, Node{ID: node, FarmID: farm}, "power target", EventPowerTargetChanged, func(n *Node) {
		n.PowerTarget = target
		n.PowerRefused = ""
	})
	if err != nil || res.WakeVia == 0 {
		return res, err
	}
	s.log.Info("node_wake_requested", "node_id", node, "via_node_id", res.WakeVia)
	s.publishEvent(ctx, Event{Kind: EventWake, NodeID: res.WakeVia, Wake: &wake})
	return res, nil
}

// wakePeer is an awake node of n's farm that sends the Wake-on-LAN packet
// for n: the one that reported uptime last.
func (s *Service) wakePeer(ctx context.Context, n Node, hasMAC bool) (uint32, error) {
	if !hasMAC {
		return 0, fmt.Errorf("node %d registered no MAC address to wake it by: wake it by hand", n.ID)
	}
	now := s.cfg.Now()
	peers, err := list(ctx, s.st.nodes, 0, func(p *Node) uint64 { return uint64(p.ID) }, func(p *Node) bool {
		return p.FarmID == n.FarmID && p.ID != n.ID && awake(p, now)
	})
	if err != nil {
		return 0, err
	}
	if len(peers) == 0 {
		return 0, fmt.Errorf("no awake node of farm %d can send the wake-on-LAN packet of node %d: wake it by hand", n.FarmID, n.ID)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Updated.After(peers[j].Updated) })
	return peers[0].ID, nil
}

// nodePower records a node's power state, as the node reports it, and why
// it refused a standby target.
func (s *Service) nodePower(ctx context.Context, w *signedRequest, req nodePowerReq) (any, error) {
	if err := validPower(req.Power); err != nil {
		return nil, err
	}
	if len(req.Refused) > 256 {
		return nil, fmt.Errorf("%w: refusal longer than 256 bytes", ErrInvalid)
	}
	if req.Refused != "" && req.Power != PowerUp {
		return nil, fmt.Errorf("%w: a node that refuses standby stays up", ErrInvalid)
	}
	_, err := s.updateOwnNode(ctx, w.Key, req.NodeID, func(n *Node) error {
		n.Power = req.Power
		n.PowerRefused = req.Refused
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reporting power of node %d: %w", req.NodeID, err)
	}
	return struct{}{}, nil
}
