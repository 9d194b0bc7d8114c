// Package api is the node's public API over the relay: the zos.* commands of
// the original (deployment deploy/update/get/list/changes/delete,
// statistics, storage pools, system version and diagnostics). It verifies
// everything a deployment claims before anything is stored. Its requests and
// answers are the wire types of internal/nodeapi, which clients use without
// linking the node.
package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// Grid is what the API reads from the registry.
type Grid interface {
	Contract(ctx context.Context, id uint64) (registry.Contract, error)
	Twin(ctx context.Context, id uint32) (registry.Twin, error)
}

// Engine is what the API needs of the provision engine.
type Engine interface {
	Provision(d *gridtypes.Deployment) error
	Update(d *gridtypes.Deployment, ops []gridtypes.Op) error
	Supports(t gridtypes.WorkloadType) bool
	Used() (gridtypes.Capacity, error)
}

// Deployments is what the API reads of the stored deployments (the
// provision store). Get wraps provision.ErrNotFound for a deployment the
// twin does not have.
type Deployments interface {
	Get(twin uint32, contract uint64) (*gridtypes.Deployment, error)
	List(twin uint32) ([]*gridtypes.Deployment, error)
	Changes(twin uint32, contract uint64) ([]gridtypes.Workload, error)
	All() ([]*gridtypes.Deployment, error)
	// Changed is closed at the deployment's next committed change.
	Changed(twin uint32, contract uint64) <-chan struct{}
}

// Node answers the statistics and system commands in the wire types of
// internal/nodeapi.
type Node interface {
	Total() gridtypes.Capacity
	Reserved() gridtypes.Capacity
	Pools() []nodeapi.Pool
	Version() string
	Diagnostics() nodeapi.Diagnostics
}

// API is the set of handlers.
type API struct {
	nodeID uint32
	grid   Grid
	engine Engine
	store  Deployments
	node   Node
	logs   ConsoleLogs // nil: the node's, if it has them
	waits  waits
}

// New returns the API of node nodeID.
func New(nodeID uint32, grid Grid, engine Engine, store Deployments, node Node, opts ...Option) *API {
	a := &API{nodeID: nodeID, grid: grid, engine: engine, store: store, node: node}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Register adds every command to srv.
func (a *API) Register(srv *rmb.Server) {
	srv.Handle(nodeapi.CmdDeploy, a.deploy)
	srv.Handle(nodeapi.CmdUpdate, a.update)
	srv.Handle(nodeapi.CmdGet, a.get)
	srv.Handle(nodeapi.CmdWait, a.wait)
	srv.Handle(nodeapi.CmdList, a.list)
	srv.Handle(nodeapi.CmdChanges, a.changes)
	srv.Handle(nodeapi.CmdDelete, a.delete)
	srv.Handle(nodeapi.CmdStatistics, a.statistics)
	srv.Handle(nodeapi.CmdPools, a.pools)
	srv.Handle(nodeapi.CmdVersion, a.version)
	srv.Handle(nodeapi.CmdDiagnostics, a.diagnostics)
	srv.Handle(nodeapi.CmdDMI, a.dmi)
	srv.Handle(nodeapi.CmdHypervisor, a.hypervisor)
	srv.Handle(nodeapi.CmdNodeFeatures, a.nodeFeatures)
	srv.Handle(nodeapi.CmdWGPorts, a.listWGPorts)
	srv.Handle(nodeapi.CmdPublicConfig, a.publicConfig)
	srv.Handle(nodeapi.CmdInterfaces, a.interfaces)
	srv.Handle(nodeapi.CmdHasIPv6, a.hasIPv6)
	srv.Handle(nodeapi.CmdPlanetary, a.planetary)
	srv.Handle(nodeapi.CmdPrivateIPs, a.listPrivateIPs)
	srv.Handle(nodeapi.CmdPublicIPs, a.listPublicIPs)
	srv.Handle(nodeapi.CmdZMachineLogs, a.zmachineLogs)
}

func decodeDeployment(payload []byte) (*gridtypes.Deployment, error) {
	var d gridtypes.Deployment
	if err := json.Unmarshal(payload, &d); err != nil {
		return nil, fmt.Errorf("decoding deployment: %w", err)
	}
	return &d, nil
}

// check verifies a deployment sent by twin src: valid, owned by src, every
// type supported, signatures, and a contract of src on this node holding
// this hash with enough public IPs.
func (a *API) check(ctx context.Context, src uint32, d *gridtypes.Deployment) error {
	if err := d.Valid(); err != nil {
		return fmt.Errorf("invalid deployment: %w", err)
	}
	if d.TwinID != src {
		return fmt.Errorf("deployment belongs to twin %d, but twin %d sent it", d.TwinID, src)
	}
	for _, wl := range d.Workloads {
		if !a.engine.Supports(wl.Type) {
			return fmt.Errorf("workload %q: type %s is not supported on this node", wl.Name, wl.Type)
		}
	}
	err := d.Verify(gridtypes.KeyGetterFunc(func(twin uint32) ([]byte, error) {
		t, err := a.grid.Twin(ctx, twin)
		if err != nil {
			return nil, fmt.Errorf("getting twin %d: %w", twin, err)
		}
		return hex.DecodeString(t.PublicKey)
	}))
	if err != nil {
		return fmt.Errorf("verifying signatures: %w", err)
	}
	hash, err := d.Hash()
	if err != nil {
		return err
	}
	c, err := a.grid.Contract(ctx, d.ContractID)
	if err != nil {
		return fmt.Errorf("getting contract %d: %w", d.ContractID, err)
	}
	switch {
	case c.Type != registry.TypeNode:
		return fmt.Errorf("contract %d is a %s contract, not a node contract", c.ID, c.Type)
	case c.State != registry.StateCreated:
		return fmt.Errorf("contract %d is %s", c.ID, c.State)
	case c.NodeID != a.nodeID:
		return fmt.Errorf("contract %d is for node %d, this is node %d", c.ID, c.NodeID, a.nodeID)
	case c.TwinID != d.TwinID:
		return fmt.Errorf("contract %d belongs to twin %d, not %d", c.ID, c.TwinID, d.TwinID)
	case c.DeploymentHash != hash:
		return fmt.Errorf("contract %d holds hash %s, the deployment hashes to %s", c.ID, c.DeploymentHash, hash)
	}
	// The registry is not trusted: the contract must carry its owner's
	// signed request for exactly this node and hash.
	owner, err := a.grid.Twin(ctx, d.TwinID)
	if err != nil {
		return fmt.Errorf("getting twin %d: %w", d.TwinID, err)
	}
	ownerKey, err := hex.DecodeString(owner.PublicKey)
	if err != nil {
		return fmt.Errorf("twin %d has a malformed key: %w", d.TwinID, err)
	}
	if err := registry.VerifyContract(c, ownerKey); err != nil {
		return fmt.Errorf("contract %d is not signed by twin %d: %w", c.ID, d.TwinID, err)
	}
	capa, err := d.Capacity()
	if err != nil {
		return err
	}
	if capa.IPV4U > uint64(c.PublicIPsCount) {
		return fmt.Errorf("deployment needs %d public IPv4 addresses, contract %d reserved %d", capa.IPV4U, c.ID, c.PublicIPsCount)
	}
	return nil
}

func (a *API) deploy(ctx context.Context, src uint32, payload []byte) (any, error) {
	d, err := decodeDeployment(payload)
	if err != nil {
		return nil, err
	}
	if d.Version != 0 {
		return nil, fmt.Errorf("a new deployment must have version 0, got %d (use zos.deployment.update)", d.Version)
	}
	if err := a.check(ctx, src, d); err != nil {
		return nil, err
	}
	if err := a.engine.Provision(d); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *API) update(ctx context.Context, src uint32, payload []byte) (any, error) {
	d, err := decodeDeployment(payload)
	if err != nil {
		return nil, err
	}
	if err := a.check(ctx, src, d); err != nil {
		return nil, err
	}
	old, err := a.store.Get(d.TwinID, d.ContractID)
	if err != nil {
		return nil, err
	}
	ops, err := gridtypes.Upgrade(old, d)
	if err != nil {
		return nil, fmt.Errorf("invalid update: %w", err)
	}
	if err := a.engine.Update(d, ops); err != nil {
		return nil, err
	}
	return nil, nil
}

func contractOf(payload []byte) (uint64, error) {
	var r nodeapi.ContractRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return 0, fmt.Errorf("decoding request: %w", err)
	}
	return r.ContractID, nil
}

func (a *API) get(_ context.Context, src uint32, payload []byte) (any, error) {
	id, err := contractOf(payload)
	if err != nil {
		return nil, err
	}
	return a.store.Get(src, id)
}

func (a *API) list(_ context.Context, src uint32, _ []byte) (any, error) {
	l, err := a.store.List(src)
	if l == nil {
		l = []*gridtypes.Deployment{}
	}
	return l, err
}

func (a *API) changes(_ context.Context, src uint32, payload []byte) (any, error) {
	id, err := contractOf(payload)
	if err != nil {
		return nil, err
	}
	return a.store.Changes(src, id)
}

// ErrDeleteDisabled is the answer to zos.deployment.delete, as the original.
var ErrDeleteDisabled = errors.New("deletion over the api is disabled, please cancel your contract instead")

func (a *API) delete(context.Context, uint32, []byte) (any, error) { return nil, ErrDeleteDisabled }

func (a *API) statistics(context.Context, uint32, []byte) (any, error) {
	used, err := a.engine.Used()
	if err != nil {
		return nil, err
	}
	all, err := a.store.All()
	if err != nil {
		return nil, err
	}
	var users nodeapi.UsersCounters
	for _, d := range all {
		if !provision.Active(d) {
			continue
		}
		users.Deployments++
		for _, wl := range d.Workloads {
			if wl.Result.State.IsOkay() {
				users.Workloads++
			}
			if c := int64(wl.Result.Created); c > users.LastDeploymentTimestamp {
				users.LastDeploymentTimestamp = c
			}
		}
	}
	sys := a.node.Reserved()
	total := used
	total.Add(sys)
	return nodeapi.Statistics{Total: a.node.Total(), Used: total, System: sys, Users: users}, nil
}

func (a *API) pools(context.Context, uint32, []byte) (any, error) { return a.node.Pools(), nil }

func (a *API) version(context.Context, uint32, []byte) (any, error) {
	return nodeapi.Version{ZOS: a.node.Version(), ZInit: "none (zos supervises its own modules)"}, nil
}

func (a *API) diagnostics(context.Context, uint32, []byte) (any, error) {
	return a.node.Diagnostics(), nil
}
