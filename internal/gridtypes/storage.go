package gridtypes

import (
	"fmt"
	"io"
	"net/url"
)

// ZMount is a virtual disk for a VM.
type ZMount struct {
	Size Unit `json:"size"`
}

// ZMountResult is the result data of a zmount.
type ZMountResult struct {
	ID string `json:"volume_id"`
}

// Challenge writes the size.
func (z *ZMount) Challenge(w io.Writer) error { return challengeSize(w, z.Size) }

// Valid requires a size.
func (z *ZMount) Valid(*Deployment) error { return validSize(z.Size) }

// Capacity is SRU = size.
func (z *ZMount) Capacity() (Capacity, error) { return Capacity{SRU: z.Size}, nil }

// Volume is a btrfs volume shared into VMs.
type Volume struct {
	Size Unit `json:"size"`
}

// VolumeResult is the result data of a volume.
type VolumeResult struct {
	ID string `json:"id"`
}

// Challenge writes the size.
func (v *Volume) Challenge(w io.Writer) error { return challengeSize(w, v.Size) }

// Valid requires a size.
func (v *Volume) Valid(*Deployment) error { return validSize(v.Size) }

// Capacity is SRU = size.
func (v *Volume) Capacity() (Capacity, error) { return Capacity{SRU: v.Size}, nil }

// challengeSize is the challenge of a disk or volume: its size.
func challengeSize(w io.Writer, size Unit) error {
	c := &challenger{w: w}
	c.d(size)
	return c.err
}

// validSize requires a size.
func validSize(size Unit) error {
	if size == 0 {
		return fmt.Errorf("size: must be greater than 0")
	}
	return nil
}

// ZDB modes.
const (
	ZDBModeUser = "user"
	ZDBModeSeq  = "seq"
)

// ZDB is a 0-db namespace on an HDD.
type ZDB struct {
	Size     Unit   `json:"size"`
	Mode     string `json:"mode"`
	Password string `json:"password"`
	Public   bool   `json:"public"`
}

// ZDBResult is the result data of a zdb. The original has no JSON tags on
// it, hence the capitalised keys.
type ZDBResult struct {
	Namespace string   `json:"Namespace"`
	IPs       []string `json:"IPs"`
	Port      uint     `json:"Port"`
}

// Challenge writes size, mode, password and public.
func (z *ZDB) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	c.d(z.Size)
	c.s(z.Mode)
	c.s(z.Password)
	c.t(z.Public)
	return c.err
}

// Valid requires a size and a known mode.
func (z *ZDB) Valid(*Deployment) error {
	if err := validSize(z.Size); err != nil {
		return err
	}
	if z.Mode != ZDBModeUser && z.Mode != ZDBModeSeq {
		return fmt.Errorf("mode: %q is neither %q nor %q", z.Mode, ZDBModeUser, ZDBModeSeq)
	}
	return nil
}

// Capacity is HRU = size.
func (z *ZDB) Capacity() (Capacity, error) { return Capacity{HRU: z.Size}, nil }

// PublicIP asks for a public IPv4 and/or IPv6 from the farm.
type PublicIP struct {
	V4 bool `json:"v4"`
	V6 bool `json:"v6"`
}

// PublicIPResult is the result data of an ip workload.
type PublicIPResult struct {
	IP      IPNet  `json:"ip"`
	IPv6    IPNet  `json:"ip6"`
	Gateway string `json:"gateway"`
}

// Challenge writes v4 and v6.
func (p *PublicIP) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	c.t(p.V4)
	c.t(p.V6)
	return c.err
}

// Valid requires at least one family.
func (p *PublicIP) Valid(*Deployment) error {
	if !p.V4 && !p.V6 {
		return fmt.Errorf("v4, v6: at least one must be true")
	}
	return nil
}

// Capacity is IPV4U = 1 when v4.
func (p *PublicIP) Capacity() (Capacity, error) {
	if p.V4 {
		return Capacity{IPV4U: 1}, nil
	}
	return Capacity{}, nil
}

// PublicIPv4 is the deprecated ipv4 workload: one public IPv4.
type PublicIPv4 struct{}

// Challenge writes nothing.
func (p *PublicIPv4) Challenge(io.Writer) error { return nil }

// Valid accepts everything.
func (p *PublicIPv4) Valid(*Deployment) error { return nil }

// Capacity is IPV4U = 1.
func (p *PublicIPv4) Capacity() (Capacity, error) { return Capacity{IPV4U: 1}, nil }

// ZLogs streams a VM's console to an output.
type ZLogs struct {
	ZMachine string `json:"zmachine"`
	Output   string `json:"output"`
}

// Challenge writes zmachine and output.
func (z *ZLogs) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	c.s(z.ZMachine)
	c.s(z.Output)
	return c.err
}

// Valid requires a zmachine of the deployment and a redis or websocket output.
func (z *ZLogs) Valid(d *Deployment) error {
	if d != nil {
		wl := d.Get(z.ZMachine)
		if wl == nil || !wl.Type.IsAny(ZMachineType, ZMachineLightType) {
			return fmt.Errorf("zmachine: %q is not a zmachine of this deployment", z.ZMachine)
		}
	}
	u, err := url.Parse(z.Output)
	if err != nil {
		return fmt.Errorf("output: %q is not a URL", z.Output)
	}
	switch u.Scheme {
	case "redis", "ws", "wss":
	default:
		return fmt.Errorf("output: scheme %q is not redis, ws or wss", u.Scheme)
	}
	return nil
}

// Capacity is zero.
func (z *ZLogs) Capacity() (Capacity, error) { return Capacity{}, nil }
