package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
)

// mountFlags collects repeated SIZE:/mountpoint flags.
type mountFlags []string

func (m *mountFlags) String() string     { return strings.Join(*m, ",") }
func (m *mountFlags) Set(v string) error { *m = append(*m, v); return nil }

// parseMount parses SIZE:/mountpoint.
func parseMount(flagName, v string) (uint64, string, error) {
	size, mp, ok := strings.Cut(v, ":")
	if !ok || !strings.HasPrefix(mp, "/") || mp == "/" {
		return 0, "", usageError("--%s %q: want SIZE:/mountpoint, e.g. 1G:/data", flagName, v)
	}
	n, err := parseSizeFlag(flagName, size)
	return n, mp, err
}

// envFlags collects repeated NAME=VALUE flags.
type envFlags map[string]string

func (e envFlags) String() string { return fmt.Sprint(map[string]string(e)) }
func (e envFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	e[k] = val
	return nil
}

// deployVM deploys a zmachine with its disks and volumes in one
// deployment, on a network the twin already has on the node.
func deployVM(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy vm", flag.ContinueOnError)
	f := addPlacedDeployFlags(fs, env)
	name := fs.String("name", "vm", "workload name of the VM")
	fl := fs.String("flist", "", "flist URL of the VM's root (required)")
	netName := fs.String("network", "", "network the VM joins (required; zosctl network create)")
	ipFlag := fs.String("ip", "", "the VM's private address (default: the first free one of the network's subnet on the node)")
	cpu := fs.Uint("cpu", 1, "virtual CPUs")
	memory := fs.String("memory", "512M", "memory (at least 250M)")
	size := fs.String("size", "", "root size (default the minimum: 500M, or 2G for large VMs)")
	entrypoint := fs.String("entrypoint", "", "command run in the VM (default: the flist's)")
	public := fs.Bool("public-ip", false, "also give the VM one of the farm's public IPv4 addresses (reserved on the contract)")
	public6 := fs.Bool("public-ip6", false, "also give the VM a public IPv6 address (from the node's /64)")
	planetary := fs.Bool("planetary", false, "also give the VM an address on the planetary overlay (yggdrasil, 200::/7; result planetary_ip)")
	env_ := envFlags{}
	fs.Var(env_, "env", "environment NAME=VALUE, repeatable (SSH_KEY installs an authorized key)")
	var disks, volumes mountFlags
	fs.Var(&disks, "disk", "a new disk SIZE:/mountpoint, repeatable (formatted on first boot)")
	fs.Var(&volumes, "volume", "a new volume SIZE:/mountpoint, repeatable (shared directory)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *fl == "" || *netName == "" {
		return usageError("--flist and --network are required")
	}
	if *cpu == 0 || *cpu > 255 {
		return usageError("--cpu: want 1 to 255")
	}
	mem, err := parseSizeFlag("memory", *memory)
	if err != nil {
		return err
	}
	var root uint64
	if *size != "" {
		if root, err = parseSizeFlag("size", *size); err != nil {
			return err
		}
	}
	z := gridtypes.ZMachine{FList: *fl, Size: root, Entrypoint: *entrypoint, Env: env_,
		ComputeCapacity: gridtypes.MachineCapacity{CPU: uint8(*cpu), Memory: mem}}
	d := &gridtypes.Deployment{}
	add := func(n string, typ gridtypes.WorkloadType, data gridtypes.WorkloadData) error {
		wl := gridtypes.Workload{Name: n, Type: typ}
		if err := wl.SetData(data); err != nil {
			return err
		}
		d.Workloads = append(d.Workloads, wl)
		return nil
	}
	for i, v := range disks {
		n, mp, err := parseMount("disk", v)
		if err != nil {
			return err
		}
		wn := fmt.Sprintf("%sdisk%d", *name, i)
		if err := add(wn, gridtypes.ZMountType, &gridtypes.ZMount{Size: n}); err != nil {
			return err
		}
		z.Mounts = append(z.Mounts, gridtypes.MachineMount{Name: wn, Mountpoint: mp})
	}
	for i, v := range volumes {
		n, mp, err := parseMount("volume", v)
		if err != nil {
			return err
		}
		wn := fmt.Sprintf("%svol%d", *name, i)
		if err := add(wn, gridtypes.VolumeType, &gridtypes.Volume{Size: n}); err != nil {
			return err
		}
		z.Mounts = append(z.Mounts, gridtypes.MachineMount{Name: wn, Mountpoint: mp})
	}
	ip := net.ParseIP(*ipFlag)
	if *ipFlag != "" && ip.To4() == nil {
		return usageError("--ip %q: not an IPv4 address", *ipFlag)
	}
	if f.pickLater() {
		// Size the whole deployment, the VM included, and pick among
		// the nodes of its network.
		draft := d.Clone()
		wl := gridtypes.Workload{Name: *name, Type: gridtypes.ZMachineType}
		if err := wl.SetData(&z); err != nil {
			return err
		}
		draft.Workloads = append(draft.Workloads, wl)
		if *public {
			draft.Workloads = append(draft.Workloads, gridtypes.Workload{Name: *name + "pip", Type: gridtypes.PublicIPType, Data: []byte(`{"v4":true}`)})
		}
		n, err := pickVMNode(ctx, env, f, draft, *netName)
		if err != nil {
			return err
		}
		*f.node = uint(n)
	}
	node, err := f.nodeID()
	if err != nil {
		return err
	}
	if ip == nil {
		if ip, err = freeVMAddress(ctx, f, node, *netName); err != nil {
			return err
		}
	}
	z.Network.Interfaces = []gridtypes.MachineInterface{{Network: *netName, IP: ip}}
	z.Network.Planetary = *planetary
	if *public || *public6 {
		pn := *name + "pip"
		if err := add(pn, gridtypes.PublicIPType, &gridtypes.PublicIP{V4: *public, V6: *public6}); err != nil {
			return err
		}
		z.Network.PublicIP = pn
	}
	if err := add(*name, gridtypes.ZMachineType, &z); err != nil {
		return err
	}
	return deployWorkloads(ctx, env, f, d)
}

// pickVMNode picks, for a VM deployment, a node among those of its
// network.
func pickVMNode(ctx context.Context, env *Env, f deployFlags, d *gridtypes.Deployment, netName string) (uint32, error) {
	s, err := openSession(ctx, f.gridFlags, true)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	only, err := networkNodes(ctx, s, netName)
	if err != nil {
		return 0, err
	}
	return s.pickNode(ctx, env, f, d, only)
}

// freeVMAddress is the first address from .2 of the network's subnet on
// node that no VM of the twin uses.
func freeVMAddress(ctx context.Context, f deployFlags, node uint32, netName string) (net.IP, error) {
	s, err := openSession(ctx, f.gridFlags, true)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	nds, err := findNetwork(ctx, s, netName)
	if err != nil {
		return nil, err
	}
	var subnet netip.Prefix
	for _, nd := range nds {
		if nd.node == node {
			subnet, err = netip.ParsePrefix(nd.data.Subnet.String())
			if err != nil {
				return nil, err
			}
			subnet = subnet.Masked()
		}
	}
	if !subnet.IsValid() {
		return nil, fmt.Errorf("network %q has no resource on node %d (zosctl network create --nodes ...)", netName, node)
	}
	var ds []gridtypes.Deployment
	if err := s.callNode(ctx, node, nodeapi.CmdList, nil, &ds); err != nil {
		return nil, err
	}
	used := map[netip.Addr]bool{}
	for _, d := range ds {
		for i := range d.Workloads {
			wl := &d.Workloads[i]
			if wl.Type != gridtypes.ZMachineType || wl.Result.State == gridtypes.StateDeleted {
				continue
			}
			data, err := wl.WorkloadData()
			if err != nil {
				continue
			}
			for _, inf := range data.(*gridtypes.ZMachine).Network.Interfaces {
				if a, ok := netip.AddrFromSlice(inf.IP.To4()); ok && inf.Network == netName {
					used[a] = true
				}
			}
		}
	}
	a := subnet.Addr().Next().Next() // .2
	for ; subnet.Contains(a) && a.As4()[3] < 255; a = a.Next() {
		if !used[a] {
			return net.IP(a.AsSlice()), nil
		}
	}
	return nil, fmt.Errorf("network %q on node %d: no free address in %s", netName, node, subnet)
}
