package gridtypes

import (
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net"
	"sort"
)

// MachineInterface attaches a VM to a private network with an address.
type MachineInterface struct {
	Network string `json:"network"`
	IP      net.IP `json:"ip"`
}

// MyceliumIP gives a VM an address on a network's mycelium overlay. The
// network field has no JSON tag in the original, hence "Network".
type MyceliumIP struct {
	Network string `json:"Network"`
	Seed    Bytes  `json:"hex_seed"`
}

// MyceliumSeedLen is the length of a VM's mycelium seed.
const MyceliumSeedLen = 6

func (m *MyceliumIP) challenge(c *challenger) {
	c.s(m.Network)
	c.x(m.Seed)
}

func (m *MyceliumIP) valid(d *Deployment) error {
	if len(m.Seed) != MyceliumSeedLen {
		return fmt.Errorf("network.mycelium.hex_seed: must be %d bytes, got %d", MyceliumSeedLen, len(m.Seed))
	}
	if m.Network == "" {
		return fmt.Errorf("network.mycelium.Network: is empty")
	}
	return nil
}

// MachineNetwork is the network configuration of a VM.
type MachineNetwork struct {
	PublicIP   string             `json:"public_ip"`
	Planetary  bool               `json:"planetary"`
	Interfaces []MachineInterface `json:"interfaces"`
	Mycelium   *MyceliumIP        `json:"mycelium,omitempty"`
}

// MachineCapacity is the compute of a VM.
type MachineCapacity struct {
	CPU    uint8 `json:"cpu"`
	Memory Unit  `json:"memory"`
}

// MachineMount mounts a disk or volume workload of the same deployment.
type MachineMount struct {
	Name       string `json:"name"`
	Mountpoint string `json:"mountpoint"`
}

// GPU names a GPU as "<slot>/<vendor>/<device>".
type GPU string

// ZMachine is a virtual machine booted from an flist.
type ZMachine struct {
	FList           string            `json:"flist"`
	Network         MachineNetwork    `json:"network"`
	Size            Unit              `json:"size"`
	ComputeCapacity MachineCapacity   `json:"compute_capacity"`
	Mounts          []MachineMount    `json:"mounts"`
	Entrypoint      string            `json:"entrypoint"`
	Env             map[string]string `json:"env"`
	Corex           bool              `json:"corex"`
	GPU             []GPU             `json:"gpu,omitempty"`
}

// ZMachineResult is the result data of a zmachine.
type ZMachineResult struct {
	ID          string `json:"id"`
	IP          string `json:"ip"`
	PlanetaryIP string `json:"planetary_ip"`
	// YggIP is the legacy name of PlanetaryIP, still written for old clients.
	YggIP      string `json:"ygg_ip,omitempty"`
	MyceliumIP string `json:"mycelium_ip"`
	ConsoleURL string `json:"console_url"`
}

// Minimum sizes of a VM.
const (
	MinMemory       = 250 * Megabyte
	MinRootSizeTiny = 500 * Megabyte
	MinRootSizeStd  = 2 * Gigabyte
)

// MinRootSize is the smallest root disk of a VM of that compute: 500 MiB
// when cpu*memory is below 8 GiB, else 2 GiB.
func MinRootSize(cpu uint8, memory Unit) Unit {
	hi, lo := bits.Mul64(uint64(cpu), memory)
	if hi == 0 && lo/(8*Gigabyte) == 0 {
		return MinRootSizeTiny
	}
	return MinRootSizeStd
}

// RootSize is the root disk a VM gets: its size, at least the minimum.
func (m *ZMachine) RootSize() Unit { return rootSize(m.Size, m.ComputeCapacity) }

func rootSize(size Unit, cc MachineCapacity) Unit {
	return max(size, MinRootSize(cc.CPU, cc.Memory))
}

// machineCapacity is {CRU: cpu, MRU: memory, SRU: root size}.
func machineCapacity(size Unit, cc MachineCapacity) Capacity {
	return Capacity{CRU: uint64(cc.CPU), MRU: cc.Memory, SRU: rootSize(size, cc)}
}

func challengeMachine(c *challenger, flist string, net func(), size Unit, cc MachineCapacity, mounts []MachineMount, entrypoint string, env map[string]string, gpus []GPU) {
	c.s(flist)
	net()
	c.d(size)
	c.d(uint64(cc.CPU))
	c.d(cc.Memory)
	for _, m := range mounts {
		c.s(m.Name)
		c.s(m.Mountpoint)
	}
	c.s(entrypoint)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.s(k + "=" + env[k])
	}
	for _, g := range gpus {
		c.s(string(g))
	}
}

// challengeInterfaces writes the private interfaces and the mycelium IP
// of a machine's network (both machine kinds).
func challengeInterfaces(c *challenger, ifaces []MachineInterface, myc *MyceliumIP) {
	for _, inf := range ifaces {
		c.s(inf.Network)
		c.s(inf.IP.String())
	}
	if myc != nil {
		myc.challenge(c)
	}
}

// Challenge writes flist, network, size, compute, mounts, entrypoint, the
// sorted env and the GPUs. Corex is not hashed.
func (m *ZMachine) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	challengeMachine(c, m.FList, func() {
		c.s(m.Network.PublicIP)
		c.t(m.Network.Planetary)
		challengeInterfaces(c, m.Network.Interfaces, m.Network.Mycelium)
	}, m.Size, m.ComputeCapacity, m.Mounts, m.Entrypoint, m.Env, m.GPU)
	return c.err
}

// reservedNetworks cannot be used as interface network names.
var reservedNetworks = map[string]bool{"ygg": true, "pub": true, "mycelium": true}

func validMachine(d *Deployment, flist string, ifaces []MachineInterface, myc *MyceliumIP, size Unit, cc MachineCapacity, mounts []MachineMount) error {
	if flist == "" {
		return fmt.Errorf("flist: is empty")
	}
	if len(ifaces) != 1 {
		return fmt.Errorf("network.interfaces: exactly one interface is supported, got %d", len(ifaces))
	}
	for i, inf := range ifaces {
		if inf.Network == "" {
			return fmt.Errorf("network.interfaces[%d].network: is empty", i)
		}
		if reservedNetworks[inf.Network] {
			return fmt.Errorf("network.interfaces[%d].network: %q is reserved", i, inf.Network)
		}
		if inf.IP.To16() == nil {
			return fmt.Errorf("network.interfaces[%d].ip: is not a valid IP address", i)
		}
	}
	if myc != nil {
		if err := myc.valid(d); err != nil {
			return err
		}
	}
	if cc.CPU == 0 {
		return fmt.Errorf("compute_capacity.cpu: must be greater than 0")
	}
	if cc.Memory < MinMemory {
		return fmt.Errorf("compute_capacity.memory: %d is below the minimum of %d (250 MiB)", cc.Memory, MinMemory)
	}
	if min := MinRootSize(cc.CPU, cc.Memory); size != 0 && size < min {
		return fmt.Errorf("size: %d is below the minimum root size of %d for this compute", size, min)
	}
	seen := map[string]bool{}
	for i, m := range mounts {
		if m.Name == "" {
			return fmt.Errorf("mounts[%d].name: is empty", i)
		}
		if seen[m.Name] {
			return fmt.Errorf("mounts[%d].name: %q is mounted twice", i, m.Name)
		}
		seen[m.Name] = true
		if m.Mountpoint == "" || m.Mountpoint[0] != '/' {
			return fmt.Errorf("mounts[%d].mountpoint: %q is not an absolute path", i, m.Mountpoint)
		}
		if d != nil {
			if wl := d.Get(m.Name); wl == nil {
				return fmt.Errorf("mounts[%d].name: no workload %q in the deployment", i, m.Name)
			} else if !wl.Type.IsAny(ZMountType, VolumeType, QuantumSafeFSType) {
				return fmt.Errorf("mounts[%d].name: %q is a %s, not a zmount, volume or qsfs", i, m.Name, wl.Type)
			}
		}
	}
	return nil
}

// Valid checks the rules of a zmachine.
func (m *ZMachine) Valid(d *Deployment) error {
	if err := validMachine(d, m.FList, m.Network.Interfaces, m.Network.Mycelium, m.Size, m.ComputeCapacity, m.Mounts); err != nil {
		return err
	}
	if m.Network.PublicIP != "" && d != nil {
		wl := d.Get(m.Network.PublicIP)
		if wl == nil || !wl.Type.IsAny(PublicIPType, PublicIPv4Type) {
			return fmt.Errorf("network.public_ip: %q is not an ip workload of this deployment", m.Network.PublicIP)
		}
		users := 0
		for i := range d.Workloads {
			if d.Workloads[i].Type != ZMachineType {
				continue
			}
			other, err := d.Workloads[i].WorkloadData()
			if err != nil {
				continue
			}
			if other.(*ZMachine).Network.PublicIP == m.Network.PublicIP {
				users++
			}
		}
		if users > 1 {
			return fmt.Errorf("network.public_ip: %q is used by %d machines, at most one may use it", m.Network.PublicIP, users)
		}
	}
	return nil
}

// Capacity is {CRU: cpu, MRU: memory, SRU: root size}.
func (m *ZMachine) Capacity() (Capacity, error) {
	return machineCapacity(m.Size, m.ComputeCapacity), nil
}

// MachineNetworkLight is the network configuration of a light VM.
type MachineNetworkLight struct {
	Interfaces []MachineInterface `json:"interfaces"`
	Mycelium   *MyceliumIP        `json:"mycelium,omitempty"`
}

// ZMachineLight is the VM of light nodes: no public IP, no planetary.
type ZMachineLight struct {
	FList           string              `json:"flist"`
	Network         MachineNetworkLight `json:"network"`
	Size            Unit                `json:"size"`
	ComputeCapacity MachineCapacity     `json:"compute_capacity"`
	Mounts          []MachineMount      `json:"mounts"`
	Entrypoint      string              `json:"entrypoint"`
	Env             map[string]string   `json:"env"`
	Corex           bool                `json:"corex"`
	GPU             []GPU               `json:"gpu,omitempty"`
}

// ZMachineLightResult is the result data of a zmachine-light.
type ZMachineLightResult struct {
	ID         string `json:"id"`
	IP         string `json:"ip"`
	MyceliumIP string `json:"mycelium_ip"`
	ConsoleURL string `json:"console_url"`
}

// Challenge is the zmachine challenge without public_ip and planetary.
func (m *ZMachineLight) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	challengeMachine(c, m.FList, func() {
		challengeInterfaces(c, m.Network.Interfaces, m.Network.Mycelium)
	}, m.Size, m.ComputeCapacity, m.Mounts, m.Entrypoint, m.Env, m.GPU)
	return c.err
}

// Valid checks the rules of a zmachine-light.
func (m *ZMachineLight) Valid(d *Deployment) error {
	return validMachine(d, m.FList, m.Network.Interfaces, m.Network.Mycelium, m.Size, m.ComputeCapacity, m.Mounts)
}

// Capacity is {CRU: cpu, MRU: memory, SRU: root size}.
func (m *ZMachineLight) Capacity() (Capacity, error) {
	return machineCapacity(m.Size, m.ComputeCapacity), nil
}

var _ json.Marshaler = Bytes(nil)
