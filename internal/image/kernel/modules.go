package kernel

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Module is one loadable kernel module.
type Module struct {
	// Name is the module name with '-' written '_'.
	Name string
	// Path is relative to the modules directory (kernel/fs/btrfs/btrfs.ko).
	Path string
	// Depends are the modules that must be loaded first (symbols).
	Depends []string
	// SoftPre are modules or aliases the module asks for before itself
	// (softdep pre:), e.g. crc32c for btrfs: with no modprobe in the image
	// they are loaded first too.
	SoftPre []string
	// DeviceAliases are the module's device match patterns (pci:, virtio:,
	// acpi*:, cpu:, ...): a module that has some is a driver, loaded only
	// when a device in sysfs matches one (cold plug).
	DeviceAliases []string
	aliases       []string
}

// deviceBuses are the modalias prefixes of hardware a driver binds to.
var deviceBuses = []string{"pci:", "virtio:", "usb:", "acpi", "of:", "platform:", "scsi:", "cpu:", "vmbus:", "xen:", "pcmcia:", "mdio:", "hid:", "serio:", "pnp:"}

func isDeviceAlias(a string) bool {
	for _, b := range deviceBuses {
		if strings.HasPrefix(a, b) {
			return true
		}
	}
	return false
}

// Index is every module of a kernel, by name and by plain alias.
type Index struct {
	dir     string
	byName  map[string]*Module
	byAlias map[string][]string
	builtin map[string]bool
}

// Normalize writes a module name the way the kernel does ('-' as '_').
func Normalize(name string) string {
	return strings.ReplaceAll(strings.TrimSuffix(name, ".ko"), "-", "_")
}

// ReadIndex reads the .modinfo section of every module under dir
// (lib/modules/VERSION): the deb ships no modules.dep.
func ReadIndex(dir string) (*Index, error) {
	ix := &Index{dir: dir, byName: map[string]*Module{}, byAlias: map[string][]string{}, builtin: map[string]bool{}}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				ix.builtin[Normalize(filepath.Base(l))] = true
			}
		}
	}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return err
		}
		m, err := readModinfo(p)
		if err != nil {
			return err
		}
		m.Path, _ = filepath.Rel(dir, p)
		ix.byName[m.Name] = m
		for _, a := range m.aliases {
			ix.byAlias[a] = append(ix.byAlias[a], m.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading modules of %s: %w", dir, err)
	}
	if len(ix.byName) == 0 {
		return nil, fmt.Errorf("no modules under %s", dir)
	}
	for _, names := range ix.byAlias {
		sort.Strings(names)
	}
	return ix, nil
}

// readModinfo parses the NUL-separated key=value pairs of a module's
// .modinfo section.
func readModinfo(path string) (*Module, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening module %s: %w", path, err)
	}
	defer f.Close()
	m := &Module{Name: Normalize(filepath.Base(path))}
	sec := f.Section(".modinfo")
	if sec == nil {
		return m, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo of %s: %w", path, err)
	}
	parseModinfo(m, data)
	return m, nil
}

func parseModinfo(m *Module, data []byte) {
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			if v != "" {
				m.Name = Normalize(v)
			}
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Depends = append(m.Depends, Normalize(d))
				}
			}
		case "softdep":
			// "pre: a b post: c"
			pre := false
			for _, w := range strings.Fields(v) {
				switch w {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						m.SoftPre = append(m.SoftPre, w)
					}
				}
			}
		case "alias":
			if isDeviceAlias(v) && !strings.ContainsAny(v, " \t") {
				m.DeviceAliases = append(m.DeviceAliases, v)
			}
			if !strings.ContainsAny(v, "*?[:") {
				m.aliases = append(m.aliases, v)
			}
		}
	}
}

// Resolve returns the modules wanted (names or plain aliases) and
// everything they need, each after its dependencies. Wanted names that are
// built into the kernel are skipped; names found nowhere are returned in
// missing, not as an error, since a driver list is a wish list.
func (ix *Index) Resolve(wanted []string) (order []*Module, missing []string) {
	seen := map[string]bool{}
	var visit func(name string, stack map[string]bool)
	visit = func(name string, stack map[string]bool) {
		if seen[name] || stack[name] {
			return
		}
		m := ix.byName[name]
		if m == nil {
			return
		}
		stack[name] = true
		for _, s := range m.SoftPre {
			for _, n := range ix.lookup(s) {
				visit(n, stack)
			}
		}
		for _, d := range m.Depends {
			visit(d, stack)
		}
		delete(stack, name)
		seen[name] = true
		m.Depends = ix.deps(m)
		order = append(order, m)
	}
	for _, w := range wanted {
		names := ix.lookup(w)
		if len(names) == 0 {
			if !ix.builtin[Normalize(w)] {
				missing = append(missing, w)
			}
			continue
		}
		for _, n := range names {
			visit(n, map[string]bool{})
		}
	}
	return order, missing
}

// deps are the names a module needs loaded first: symbol dependencies
// and pre soft dependencies resolved to module names.
func (ix *Index) deps(m *Module) []string {
	var out []string
	have := map[string]bool{}
	for _, s := range m.SoftPre {
		for _, n := range ix.lookup(s) {
			if !have[n] {
				have[n] = true
				out = append(out, n)
			}
		}
	}
	for _, d := range m.Depends {
		if !have[d] && ix.byName[d] != nil {
			have[d] = true
			out = append(out, d)
		}
	}
	return out
}

// AlwaysLoad marks, in the load list, a module loaded at every boot.
const AlwaysLoad = "*"

// LoadLine is the line of a module in the image's load list:
// "PATH<TAB>DEP,DEP<TAB>WHEN", WHEN being the device aliases of a driver
// (loaded when a device matches), AlwaysLoad for a wanted module that is
// not a driver (file systems, networking), or empty for a module loaded
// only as another's dependency.
func LoadLine(m *Module, wanted bool) string {
	when := strings.Join(m.DeviceAliases, " ")
	if when == "" && wanted {
		when = AlwaysLoad
	}
	return m.Path + "\t" + strings.Join(m.Depends, ",") + "\t" + when
}

// Wanted reports whether a module was asked for by name or alias in
// wanted (not only pulled in as a dependency).
func (ix *Index) Wanted(m *Module, wanted []string) bool {
	for _, w := range wanted {
		for _, n := range ix.lookup(w) {
			if n == m.Name {
				return true
			}
		}
	}
	return false
}

// lookup maps a module name or alias to module names.
func (ix *Index) lookup(s string) []string {
	if n := Normalize(s); ix.byName[n] != nil {
		return []string{n}
	}
	return ix.byAlias[s]
}

// ServerModules are the drivers a node needs, in the order the image loads
// them (each after its dependencies): virtio first so that a VM boot sees
// its disks and NIC quickly, then storage and NIC drivers of real servers,
// then what the node's modules use.
var ServerModules = []string{
	// virtio (QEMU, clouds)
	"virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_console", "virtio_rng",
	"virtio_balloon", "button", "evdev",
	// checksums btrfs needs before it loads (no request_module without modprobe)
	"crc32c_generic", "crc32c_intel", "xxhash_generic", "sha256_generic", "blake2b_generic",
	// file systems
	"btrfs", "overlay", "fuse", "virtiofs", "9pnet_virtio", "9p", "squashfs", "erofs", "ext4",
	// disks
	"nvme", "ahci", "sd_mod", "sr_mod", "megaraid_sas", "mpt3sas", "hpsa", "aacraid", "smartpqi", "uas",
	"usb_storage", "xhci_pci", "ehci_pci",
	// NICs
	"e1000", "e1000e", "igb", "igc", "ixgbe", "i40e", "ice", "r8169", "tg3", "bnx2", "bnx2x", "bnxt_en",
	"mlx4_en", "mlx5_core", "vmxnet3", "be2net", "qede", "atlantic",
	// networking of the node
	"tun", "bridge", "br_netfilter", "veth", "macvlan", "macvtap", "vxlan", "wireguard", "nf_tables",
	"nft_chain_nat", "nft_nat", "nft_masq", "nft_ct", "nft_reject_inet", "nft_fib_inet", "nft_compat",
	"nf_conntrack", "nf_nat", "vhost_net", "vhost_vsock",
	// VMs and passthrough
	"kvm_intel", "kvm_amd", "vfio", "vfio_pci", "vfio_iommu_type1",
}
