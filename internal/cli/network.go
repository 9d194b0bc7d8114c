package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/mesh"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
)

func networkCommand() *command {
	return &command{name: "network", summary: "private WireGuard networks across nodes", subs: []*command{
		{name: "create", usage: "--name NAME --nodes N,N,... [--ip-range 10.20.0.0/16] [--access-node N]", summary: "deploy a network resource on every node, peered as one network", run: networkCreate},
		{name: "add-access", usage: "--name NAME [--access-node N]", summary: "add your machine to a network and print its wg-quick config", run: networkAddAccess},
		{name: "ports", usage: "--node N", summary: "list the WireGuard ports taken on a node", run: networkPorts},
		{name: "delete", usage: "--name NAME", summary: "cancel the contracts of a network's resources", run: networkDelete},
	}}
}

func parseNodes(s string) ([]uint32, error) {
	var out []uint32
	seen := map[uint32]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil || n == 0 {
			return nil, usageError("--nodes: %q is not a node id", f)
		}
		if !seen[uint32(n)] {
			seen[uint32(n)] = true
			out = append(out, uint32(n))
		}
	}
	if len(out) == 0 {
		return nil, usageError("--nodes is required")
	}
	return out, nil
}

// endpointOf returns a node's public IPv4 address (its public config),
// invalid for a hidden node.
func endpointOf(n registry.Node) netip.Addr {
	if n.PublicConfig == nil || n.PublicConfig.IPv4 == "" {
		return netip.Addr{}
	}
	p, err := netip.ParsePrefix(n.PublicConfig.IPv4)
	if err != nil {
		return netip.Addr{}
	}
	return p.Addr()
}

// pickAccess returns the access node: the one asked for, or else the
// first public node when some node is hidden.
func pickAccess(m *mesh.Mesh, asked uint32) uint32 {
	if asked != 0 {
		return asked
	}
	for _, n := range m.Nodes {
		if !n.Endpoint.IsValid() {
			for _, p := range m.Nodes {
				if p.Endpoint.IsValid() {
					return p.NodeID
				}
			}
		}
	}
	return 0
}

func networkCreate(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("network create", flag.ContinueOnError)
	f := addDeployFlags(fs, env)
	name := fs.String("name", "", "network name (required)")
	nodes := fs.String("nodes", "", "comma-separated node ids (required)")
	ipRange := fs.String("ip-range", "10.20.0.0/16", "the network's IPv4 /16")
	access := fs.Uint("access-node", 0, "public node that hidden nodes and your machines connect through")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := gridtypes.ValidName(*name); err != nil || *name == "" {
		return usageError("--name: %q is not a valid workload name", *name)
	}
	ids, err := parseNodes(*nodes)
	if err != nil {
		return err
	}
	rng, err := netip.ParsePrefix(*ipRange)
	if err != nil {
		return usageError("--ip-range: %v", err)
	}
	s, err := openSession(ctx, f.gridFlags, true)
	if err != nil {
		return err
	}
	if nds, err := findNetwork(ctx, s, *name); err == nil && len(nds) > 0 {
		s.Close()
		return fmt.Errorf("you already have a network %q (on node %d): pick another name", *name, nds[0].node)
	}
	m := mesh.Mesh{Range: rng.Masked()}
	for _, id := range ids {
		n, err := s.reg.Node(ctx, id)
		if err != nil {
			s.Close()
			return fmt.Errorf("getting node %d: %w", id, err)
		}
		var taken []uint16
		if err := s.callNode(ctx, id, nodeapi.CmdWGPorts, nil, &taken); err != nil {
			s.Close()
			return err
		}
		// A random start: the node knows the ports its networks hold, not
		// what else listens beside it (another grid's node on a shared
		// host), and a fixed start per node id made those collide.
		port, err := mesh.FreePort(taken, rand.Uint32(), 3000, 9999)
		if err != nil {
			s.Close()
			return fmt.Errorf("node %d: %w", id, err)
		}
		priv, _, err := mesh.GenerateKey()
		if err != nil {
			s.Close()
			return err
		}
		sub, err := m.NextSubnet()
		if err != nil {
			s.Close()
			return err
		}
		m.Nodes = append(m.Nodes, mesh.Node{NodeID: id, Subnet: sub, PrivateKey: priv, Port: port, Endpoint: endpointOf(n)})
	}
	s.Close()
	m.Access = pickAccess(&m, uint32(*access))
	if m.Access != 0 && !contains(ids, m.Access) {
		return fmt.Errorf("access node %d must be one of --nodes", m.Access)
	}
	rs, err := m.Resources()
	if err != nil {
		return err
	}
	for i, n := range m.Nodes {
		wl := gridtypes.Workload{Name: *name, Type: gridtypes.NetworkType}
		if err := wl.SetData(&rs[i]); err != nil {
			return err
		}
		*f.node = uint(n.NodeID)
		progress(env, *f.json, "node %d: subnet %s, wireguard %s port %d\n", n.NodeID, n.Subnet, mesh.WGAddress(n.Subnet).Addr(), n.Port)
		if err := deployWorkloads(ctx, env, f, &gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}}); err != nil {
			err = fmt.Errorf("node %d: %w", n.NodeID, err)
			return errors.Join(err, undoNetwork(context.WithoutCancel(ctx), env, f, *name))
		}
	}
	return nil
}

// undoNetwork cancels the contracts of the resources of network name
// already deployed, so that a failed create leaves nothing behind.
func undoNetwork(ctx context.Context, env *Env, f deployFlags, name string) error {
	s, err := openSession(ctx, f.gridFlags, true)
	if err != nil {
		return err
	}
	defer s.Close()
	nds, err := findNetwork(ctx, s, name)
	if err != nil {
		return nil // nothing deployed
	}
	var errs []error
	for _, nd := range nds {
		progress(env, *f.json, "canceling contract %d on node %d\n", nd.d.ContractID, nd.node)
		if err := s.reg.CancelContract(ctx, nd.d.ContractID); err != nil {
			errs = append(errs, fmt.Errorf("canceling contract %d: %w", nd.d.ContractID, err))
		}
	}
	return errors.Join(errs...)
}

func contains(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// openNetwork opens a session and finds in it the deployments of network
// name (--name, required). The caller closes the session.
func openNetwork(ctx context.Context, f deployFlags, name string) (*session, []netDeployment, error) {
	if name == "" {
		return nil, nil, usageError("--name is required")
	}
	s, err := openSession(ctx, f.gridFlags, true)
	if err != nil {
		return nil, nil, err
	}
	nds, err := findNetwork(ctx, s, name)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, nds, nil
}

// netDeployment is a deployment holding a resource of the network.
type netDeployment struct {
	node uint32
	d    *gridtypes.Deployment
	idx  int // of the network workload
	data *gridtypes.Network
}

// findNetwork reads, from every node with an active contract of the
// twin, the deployments that hold network name.
func findNetwork(ctx context.Context, s *session, name string) ([]netDeployment, error) {
	cs, err := s.reg.Contracts(ctx, registry.ContractFilter{TwinID: s.twin.ID, State: registry.StateCreated})
	if err != nil {
		return nil, fmt.Errorf("listing contracts: %w", err)
	}
	var out []netDeployment
	for _, c := range cs {
		if c.Type != registry.TypeNode {
			continue
		}
		var d gridtypes.Deployment
		if err := s.callNode(ctx, c.NodeID, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: c.ID}, &d); err != nil {
			return nil, err
		}
		for i := range d.Workloads {
			wl := &d.Workloads[i]
			if wl.Name != name || wl.Type != gridtypes.NetworkType {
				continue
			}
			data, err := wl.WorkloadData()
			if err != nil {
				return nil, err
			}
			out = append(out, netDeployment{node: c.NodeID, d: &d, idx: i, data: data.(*gridtypes.Network)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("you have no network %q", name)
	}
	return out, nil
}

func networkAddAccess(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("network add-access", flag.ContinueOnError)
	f := addDeployFlags(fs, env)
	name := fs.String("name", "", "network name (required)")
	access := fs.Uint("access-node", 0, "public node to connect through (default: the network's, or its first public node)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	s, nds, err := openNetwork(ctx, f, *name)
	if err != nil {
		return err
	}
	defer s.Close()
	// Rebuild the mesh from what the nodes run.
	pubs := map[string]bool{}
	m := mesh.Mesh{}
	for _, nd := range nds {
		rng, _ := netip.ParsePrefix(nd.data.NetworkIPRange.String())
		sub, _ := netip.ParsePrefix(nd.data.Subnet.String())
		m.Range = rng.Masked()
		n, err := s.reg.Node(ctx, nd.node)
		if err != nil {
			return fmt.Errorf("getting node %d: %w", nd.node, err)
		}
		m.Nodes = append(m.Nodes, mesh.Node{NodeID: nd.node, Subnet: sub.Masked(), PrivateKey: nd.data.WGPrivateKey, Port: nd.data.WGListenPort, Endpoint: endpointOf(n)})
		pub, err := mesh.PublicKey(nd.data.WGPrivateKey)
		if err != nil {
			return err
		}
		pubs[pub] = true
	}
	// Peers that are no node are machines added before: keep them, and
	// their access node.
	for _, nd := range nds {
		for _, p := range nd.data.Peers {
			if !pubs[p.WGPublicKey] {
				sub, _ := netip.ParsePrefix(p.Subnet.String())
				m.Users = append(m.Users, mesh.AccessPeer{Subnet: sub.Masked(), PublicKey: p.WGPublicKey})
				m.Access = nd.node
			}
		}
	}
	if m.Access == 0 {
		m.Access = uint32(*access)
	}
	if m.Access == 0 {
		for _, n := range m.Nodes {
			if n.Endpoint.IsValid() {
				m.Access = n.NodeID
				break
			}
		}
	}
	if m.Access == 0 {
		return errors.New("the network has no node with a public address to connect through")
	}
	priv, pub, err := mesh.GenerateKey()
	if err != nil {
		return err
	}
	sub, err := m.NextSubnet()
	if err != nil {
		return err
	}
	m.Users = append(m.Users, mesh.AccessPeer{Subnet: sub, PublicKey: pub})
	rs, err := m.Resources()
	if err != nil {
		return err
	}
	for i, nd := range nds {
		if err := updateNetwork(ctx, env, f, s, nd, &rs[i]); err != nil {
			return fmt.Errorf("node %d: %w", nd.node, err)
		}
	}
	conf, err := m.WGQuick(priv, sub)
	if err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, conf)
	return nil
}

// updateNetwork sends a new version of nd's deployment with data as the
// network workload, and waits.
func updateNetwork(ctx context.Context, env *Env, f deployFlags, s *session, nd netDeployment, data *gridtypes.Network) error {
	d := nd.d
	d.Version++
	wl := &d.Workloads[nd.idx]
	wl.Version = d.Version
	if err := wl.SetData(data); err != nil {
		return err
	}
	for i := range d.Workloads {
		d.Workloads[i].Result = gridtypes.Result{}
	}
	d.SignatureRequirement.Signatures = nil
	if err := d.Sign(s.twin.ID, s.key); err != nil {
		return err
	}
	hash, err := d.Hash()
	if err != nil {
		return err
	}
	if _, err := s.reg.UpdateNodeContract(ctx, d.ContractID, hash, d.Metadata); err != nil {
		return fmt.Errorf("updating contract %d: %w", d.ContractID, err)
	}
	if err := s.callNode(ctx, nd.node, nodeapi.CmdUpdate, d, nil); err != nil {
		return err
	}
	// The quiet wait: stdout carries the wg-quick config.
	quiet := f
	yes := true
	quiet.json = &yes
	return s.waitVersion(ctx, env, quiet, nd.node, d.ContractID, d.Version)
}

// waitVersion polls until the deployment's workloads at version are done.
func (s *session) waitVersion(ctx context.Context, env *Env, f deployFlags, node uint32, contract uint64, version uint32) error {
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	for {
		var d gridtypes.Deployment
		if err := s.callNode(ctx, node, nodeapi.CmdGet, nodeapi.ContractRequest{ContractID: contract}, &d); err != nil {
			return err
		}
		if d.Version == version {
			done := true
			for _, wl := range d.Workloads {
				if wl.Version == version && wl.Result.State.IsAny(gridtypes.StateInit, "") {
					done = false
				}
				if wl.Version == version && !wl.Result.State.IsAny(gridtypes.StateInit, "") && !wl.Result.State.IsOkay() {
					return fmt.Errorf("workload %s: %s %s", wl.Name, wl.Result.State, wl.Result.Error)
				}
			}
			if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for contract %d: %w", contract, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func networkPorts(ctx context.Context, env *Env, args []string) error {
	var ports []uint16
	asJSON, err := askNode(ctx, env, args, "network ports", nodeapi.CmdWGPorts, &ports)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, ports)
	}
	for _, p := range ports {
		fmt.Fprintln(env.Stdout, p)
	}
	return nil
}

func networkDelete(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("network delete", flag.ContinueOnError)
	f := addDeployFlags(fs, env)
	name := fs.String("name", "", "network name (required)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	s, nds, err := openNetwork(ctx, f, *name)
	if err != nil {
		return err
	}
	s.Close()
	for _, nd := range nds {
		if len(nd.d.Workloads) > 1 {
			return fmt.Errorf("contract %d on node %d holds other workloads than the network: cancel it with zosctl contract cancel", nd.d.ContractID, nd.node)
		}
	}
	return undoNetwork(ctx, env, f, *name)
}
