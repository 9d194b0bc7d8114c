// Package guest is the contract between the node and vminit, the init of
// container-mode VMs: the VM configuration (entrypoint, env, network,
// extra shares) and how it travels (kernel command line or a file in the
// shared root), plus the kernel command line parameters vminit reads.
// The node's VM manager writes it; cmd/vminit reads it.
package guest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"sort"
	"strings"
)

// Kernel command line parameters.
const (
	ParamRoot       = "root"           // mount tag of the root share
	ParamRootFSType = "rootfstype"     // virtiofs (default) or 9p
	ParamConfig     = "vminit.config"  // base64url (no padding) JSON Config
	ParamDebug      = "vminit.debug"   // log every step to the console
	ParamModules    = "vminit.modules" // path of the module list in the initramfs
)

// ConfigFile is where vminit looks for the Config in the root share when
// the command line carries none.
const ConfigFile = "/.vminit/config.json"

// ModulesFile is the default module list in the initramfs: one absolute
// .ko path a line, in load order, optionally followed by a group name.
// Modules without a group load at every boot; Group9P only when the root
// is mounted over 9p.
const ModulesFile = "/etc/vminit/modules"

// Group9P marks the modules of the 9p fallback in ModulesFile.
const Group9P = "9p"

// GroupDisk marks the file system modules (btrfs, ext4) in ModulesFile:
// loaded only when the config has Disks.
const GroupDisk = "disk"

// MaxCmdlineConfig is the most bytes an encoded config may take on the
// command line (x86 COMMAND_LINE_SIZE is 2048 with the rest).
const MaxCmdlineConfig = 1200

// Interface is the static IPv4 configuration of one guest NIC.
type Interface struct {
	Name    string `json:"name"`              // eth0, eth1, ... in device order
	Address string `json:"address,omitempty"` // CIDR, e.g. 10.20.2.5/24 ("" only with Address6)
	Gateway string `json:"gateway,omitempty"` // default route when set
	// Address6 and Gateway6 are the interface's public IPv6 (a /128) and
	// IPv6 default router (the node's fe80::1 on the public tap).
	Address6 string `json:"address6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	// MAC, when set, picks the interface by address (virtio-mmio devices
	// do not come in command line order); Name is then only a fallback.
	MAC string `json:"mac,omitempty"`
	// Routes are more routes through this interface.
	Routes []Route `json:"routes,omitempty"`
	// Routes6 are more IPv6 routes through this interface (the planetary
	// link: 200::/7 via the node's fe80::1).
	Routes6 []Route `json:"routes6,omitempty"`
}

// Route is "Dst via Via" (IPv4 in Routes, IPv6 in Routes6).
type Route struct {
	Dst string `json:"dst"` // CIDR
	Via string `json:"via"`
}

// Mount is an extra virtiofs share mounted at Mountpoint.
type Mount struct {
	Tag        string `json:"tag"`
	Mountpoint string `json:"mountpoint"`
}

// Disk is a virtio-blk disk mounted at Mountpoint. The guest finds it by
// Serial (/sys/block/vdX/serial: the device order under virtio-mmio is
// not the command line's), FSType is its file system (btrfs when empty).
type Disk struct {
	Serial     string `json:"serial"`
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype,omitempty"`
}

// Config is what vminit does after mounting the root.
type Config struct {
	Hostname   string            `json:"hostname,omitempty"`
	Entrypoint []string          `json:"entrypoint"`
	Dir        string            `json:"dir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// Init says the entrypoint is an init system: vminit execs it as PID 1
	// instead of supervising it and powering off when it ends.
	Init       bool        `json:"init,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	DNS        []string    `json:"dns,omitempty"`
	Mounts     []Mount     `json:"mounts,omitempty"`
	Disks      []Disk      `json:"disks,omitempty"`
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Entrypoint) == 0 || c.Entrypoint[0] == "" {
		errs = append(errs, errors.New("entrypoint: missing"))
	} else if !path.IsAbs(c.Entrypoint[0]) {
		errs = append(errs, fmt.Errorf("entrypoint %q: not an absolute path", c.Entrypoint[0]))
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("env name %q: invalid", k))
		}
	}
	for _, i := range c.Interfaces {
		if i.Name == "" {
			errs = append(errs, errors.New("interface: missing name"))
		}
		if i.Address != "" || i.Address6 == "" {
			ip, _, err := net.ParseCIDR(i.Address)
			if err != nil || ip.To4() == nil {
				errs = append(errs, fmt.Errorf("interface %s address %q: want an IPv4 CIDR", i.Name, i.Address))
			}
		}
		if i.Address6 != "" {
			p, err := netip.ParsePrefix(i.Address6)
			if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
				errs = append(errs, fmt.Errorf("interface %s address6 %q: want an IPv6 CIDR", i.Name, i.Address6))
			}
		}
		if gw, err := netip.ParseAddr(i.Gateway6); i.Gateway6 != "" && (err != nil || !gw.Is6() || gw.Is4In6()) {
			errs = append(errs, fmt.Errorf("interface %s gateway6 %q: want an IPv6 address", i.Name, i.Gateway6))
		}
		if i.Gateway != "" && net.ParseIP(i.Gateway).To4() == nil {
			errs = append(errs, fmt.Errorf("interface %s gateway %q: want an IPv4 address", i.Name, i.Gateway))
		}
		for _, r := range i.Routes {
			if _, dst, err := net.ParseCIDR(r.Dst); err != nil || dst.IP.To4() == nil || net.ParseIP(r.Via).To4() == nil {
				errs = append(errs, fmt.Errorf("interface %s route %s via %s: want an IPv4 CIDR and address", i.Name, r.Dst, r.Via))
			}
		}
		for _, r := range i.Routes6 {
			dst, derr := netip.ParsePrefix(r.Dst)
			via, verr := netip.ParseAddr(r.Via)
			if derr != nil || verr != nil || !dst.Addr().Is6() || dst.Addr().Is4In6() || !via.Is6() || via.Is4In6() {
				errs = append(errs, fmt.Errorf("interface %s route6 %s via %s: want an IPv6 CIDR and address", i.Name, r.Dst, r.Via))
			}
		}
	}
	for _, d := range c.DNS {
		if net.ParseIP(d) == nil {
			errs = append(errs, fmt.Errorf("dns %q: not an IP address", d))
		}
	}
	for _, m := range c.Mounts {
		if m.Tag == "" || !path.IsAbs(m.Mountpoint) || path.Clean(m.Mountpoint) == "/" {
			errs = append(errs, fmt.Errorf("mount %q at %q: want a tag and an absolute mountpoint other than /", m.Tag, m.Mountpoint))
		}
	}
	for _, d := range c.Disks {
		if d.Serial == "" || strings.ContainsAny(d.Serial, "/ \n") || !path.IsAbs(d.Mountpoint) || path.Clean(d.Mountpoint) == "/" {
			errs = append(errs, fmt.Errorf("disk %q at %q: want a serial and an absolute mountpoint other than /", d.Serial, d.Mountpoint))
		}
	}
	return errors.Join(errs...)
}

// Environ is Env as sorted NAME=VALUE pairs.
func (c *Config) Environ() []string {
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+c.Env[k])
	}
	return out
}

// Encode is the config as a command line value.
func (c *Config) Encode() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encoding guest config: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode parses a command line value (see Encode).
func Decode(s string) (*Config, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decoding guest config: %w", err)
	}
	return Parse(b)
}

// Parse reads a JSON config and validates it.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parsing guest config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid guest config: %w", err)
	}
	return &c, nil
}

// Cmdline is a parsed kernel command line: key=value parameters (the last
// one wins) and flags (no value).
type Cmdline map[string]string

// ParseCmdline splits /proc/cmdline. Quoting is not supported (the node
// never writes quotes).
func ParseCmdline(s string) Cmdline {
	c := Cmdline{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		c[k] = v
	}
	return c
}
