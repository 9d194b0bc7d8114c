package primitives

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/flistd"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/vm"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/qemu"
)

// Flists is what the zmachine manager needs of the flist module.
type Flists interface {
	Inspect(ctx context.Context, url string) (flistd.Info, error)
	MountOverlay(ctx context.Context, url, rwDir, target string) error
	Unmount(target string) error
	MountRO(ctx context.Context, url string) (dir, hash string, err error)
	GC() error
}

// VMs is what the zmachine manager needs of the VM manager.
type VMs interface {
	Run(ctx context.Context, s vm.Spec) error
	Inspect(ctx context.Context, name string) (vm.Info, error)
	Delete(ctx context.Context, name string) error
	// Pause and Resume stop and continue a VM's vCPUs (a contract's
	// grace period).
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
}

// Networks is what the zmachine manager needs of the network module.
type Networks interface {
	Attach(twin uint32, name, tap string) (network.Attachment, error)
	AttachPublic(tap string, ips ...netip.Addr) error
	Detach(tap string) error
}

// QSFSMounts is what the zmachine manager needs of the qsfs manager: where
// a qsfs workload is mounted on the node, shared into the VM over virtiofs.
type QSFSMounts interface {
	MountPath(id gridtypes.WorkloadID) (string, error)
}

// MachineStorage is what the zmachine manager needs of storage: the
// rootfs volume, and the disks and volumes a VM mounts.
type MachineStorage interface {
	Volumes
	DiskLookup(name string) (storage.VDisk, error)
}

// ZMachineManager provisions zmachine workloads as micro-VMs. In container
// mode the flist is mounted lazily, made writable by an overlay whose
// upper layer lives on a volume of the VM's root size, and shared with the
// guest over virtiofs; vminit mounts it as the root and runs the
// entrypoint. A zmount mounted by the VM is a virtio-blk disk (formatted
// when blank), a volume a virtiofs share; the one interface is a tap on
// the network resource's bridge.
type ZMachineManager struct {
	Storage  MachineStorage
	Flists   Flists
	VMs      VMs
	Networks Networks
	// RootfsDir holds the VMs' root overlays (one directory each).
	RootfsDir string
	// Prefix distinguishes the taps of several nodes on one host.
	Prefix string
	// DNS are the guests' name servers.
	DNS []string
	// QSFS gives the mount path of a qsfs a VM mounts (nil: none here).
	QSFS QSFSMounts
	// Planetary gives VMs an interface on the planetary overlay (nil: the
	// node runs none and refuses `planetary: true`).
	Planetary Planetary
	Log       *slog.Logger

	mu  sync.Mutex                      // guards ips
	ips map[string]gridtypes.WorkloadID // "<net id> <ip>" -> the VM using it
}

// claimIP records that wl uses ip on its twin's network name; another VM
// holding it is an error.
func (m *ZMachineManager) claimIP(wl *provision.Workload, name string, ip net.IP) error {
	key := gridtypes.NetID(wl.Deployment.TwinID, name) + " " + ip.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ips == nil {
		m.ips = map[string]gridtypes.WorkloadID{}
	}
	if other, ok := m.ips[key]; ok && other != wl.ID {
		return fmt.Errorf("network.interfaces[0].ip: %s is used by VM %s on network %q", ip, other, name)
	}
	m.ips[key] = wl.ID
	return nil
}

// releaseIPs forgets the addresses of wl.
func (m *ZMachineManager) releaseIPs(wl *provision.Workload) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, id := range m.ips {
		if id == wl.ID {
			delete(m.ips, k)
		}
	}
}

var _ provision.Manager = (*ZMachineManager)(nil)

// VMName is the VM of a zmachine workload.
func VMName(id gridtypes.WorkloadID) string { return string(id) }

func rootfsVolume(id gridtypes.WorkloadID) string { return "rootfs-" + string(id) }

// RootfsVolume is the name of the volume holding a VM's writable root.
func RootfsVolume(id gridtypes.WorkloadID) string { return rootfsVolume(id) }

// TapName is the tap of a zmachine workload's private interface: under
// 15 characters, distinct across the nodes sharing a host.
func (m *ZMachineManager) TapName(id gridtypes.WorkloadID) string {
	h := sha256.Sum256([]byte(m.Prefix + ":" + string(id)))
	return "t-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:]))[:12]
}

// tapMAC is a locally administered unicast MAC derived from the tap name.
func tapMAC(tap string) string {
	h := sha256.Sum256([]byte(tap))
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4])
}

// Provision boots the VM, or, when it runs already (a node restart adopted
// it), joins its tap to the network again and returns the same result.
func (m *ZMachineManager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.ZMachine](wl)
	if err != nil {
		return nil, err
	}
	if err := unsupported(data); err != nil {
		return nil, err
	}
	name, tap := VMName(wl.ID), m.TapName(wl.ID)
	iface := data.Network.Interfaces[0]
	if err := m.claimIP(wl, iface.Network, iface.IP); err != nil {
		return nil, err
	}
	att, err := m.Networks.Attach(wl.Deployment.TwinID, iface.Network, tap)
	if err != nil {
		m.releaseIPs(wl)
		return nil, err
	}
	result := gridtypes.ZMachineResult{ID: name, IP: iface.IP.String()}
	addr, err := vmAddress(iface, att.Gateway)
	if err != nil {
		m.Networks.Detach(tap)
		m.releaseIPs(wl)
		return nil, err
	}
	pub, err := m.public(wl, data)
	if err != nil {
		m.Networks.Detach(tap)
		m.releaseIPs(wl)
		return nil, err
	}
	ygg, err := m.planetary(wl.ID, data)
	if err != nil {
		m.Networks.Detach(tap)
		if pub != nil {
			m.Networks.Detach(pub.tap)
		}
		m.releaseIPs(wl)
		return nil, err
	}
	if ygg != nil {
		result.PlanetaryIP, result.YggIP = ygg.ip.String(), ygg.ip.String()
	}
	if info, err := m.VMs.Inspect(ctx, name); err == nil && info.Status != "stopped" {
		return result, nil
	}
	start := time.Now()
	spec, err := m.spec(ctx, wl, data, tap, addr, att)
	if err == nil && pub != nil {
		spec.NICs = append(spec.NICs, qemu.NIC{ID: "n1", Tap: pub.tap, MAC: network.PublicMAC(pub.tap).String()})
		if spec.Boot.Mode != vm.BootDisk {
			// A public IPv4 takes the default route; the private link
			// keeps the user's network (and IPv4's default route when
			// the public link has IPv6 only).
			if pub.ip.IsValid() {
				spec.Guest.Interfaces[0].Gateway = ""
				spec.Guest.Interfaces[0].Routes = []guest.Route{{Dst: att.Range.String(), Via: att.Gateway.Addr().String()}}
			}
			spec.Guest.Interfaces = append(spec.Guest.Interfaces, pub.guest())
		}
	}
	if err == nil && ygg != nil {
		spec.NICs = append(spec.NICs, ygg.nic())
		if spec.Boot.Mode != vm.BootDisk {
			spec.Guest.Interfaces = append(spec.Guest.Interfaces, ygg.guest(fmt.Sprintf("eth%d", len(spec.Guest.Interfaces))))
		}
	}
	prepared := time.Since(start)
	if err == nil {
		if err = m.VMs.Run(ctx, spec); errors.Is(err, vm.ErrExists) {
			err = nil
		}
	}
	if err != nil {
		// A new VM that failed leaves nothing behind; one that ran before
		// (a reboot) keeps its root volume for the next attempt.
		if !wl.Result.State.IsOkay() {
			if cerr := m.Deprovision(ctx, wl); cerr != nil {
				m.Log.Warn("zmachine_cleanup_failed", "workload", wl.ID, "err", cerr)
			}
		} else {
			m.Networks.Detach(tap)
			m.detachPlanetary(wl.ID, data)
			m.releaseIPs(wl)
		}
		return nil, err
	}
	m.Log.Info("zmachine_started", "workload", wl.ID, "mode", spec.Boot.Mode, "prepare", prepared.Round(time.Millisecond),
		"run", (time.Since(start) - prepared).Round(time.Millisecond))
	return result, nil
}

// unsupported refuses what this node cannot give a VM, rather than booting
// it without: mycelium addresses, GPUs (this node passes no device
// through) and corex. (`planetary` needs the node's overlay: see
// ZMachineManager.Planetary.)
func unsupported(m *gridtypes.ZMachine) error {
	switch n := m.Network; {
	case n.Mycelium != nil:
		return fmt.Errorf("network.mycelium: mycelium is not supported on this node yet")
	case len(m.GPU) > 0:
		return fmt.Errorf("gpu: no GPU %s on this node (it passes no GPU through to VMs)", m.GPU[0])
	case m.Corex:
		return fmt.Errorf("corex: not supported on this node")
	}
	return nil
}

// publicLink is a VM's public interface: an IPv4 (with the farm's
// gateway), an IPv6 (routed to the tap, the node's fe80::1 as router), or
// both.
type publicLink struct {
	tap     string
	ip      netip.Prefix // invalid: no IPv4
	gateway string
	ip6     netip.Addr // invalid: no IPv6
}

// guest is the VM's side of the link for vminit.
func (p *publicLink) guest() guest.Interface {
	i := guest.Interface{Name: "eth1", MAC: network.PublicMAC(p.tap).String()}
	if p.ip.IsValid() {
		i.Address, i.Gateway = p.ip.String(), p.gateway
	}
	if p.ip6.IsValid() {
		i.Address6, i.Gateway6 = netip.PrefixFrom(p.ip6, 128).String(), network.RouterLinkLocal.String()
	}
	return i
}

// public makes the public tap of a VM whose network names an ip workload
// of its deployment (provisioned before it), or returns nil.
func (m *ZMachineManager) public(wl *provision.Workload, data *gridtypes.ZMachine) (*publicLink, error) {
	name := data.Network.PublicIP
	if name == "" {
		return nil, nil
	}
	ipwl := wl.Deployment.Get(name)
	if ipwl == nil || !ipwl.Type.IsAny(gridtypes.PublicIPType, gridtypes.PublicIPv4Type) {
		return nil, fmt.Errorf("network.public_ip: %q is not an ip workload of the deployment", name)
	}
	var r gridtypes.PublicIPResult
	if !ipwl.Result.State.IsOkay() || ipwl.Result.Unmarshal(&r) != nil || r.IP.IsZero() && r.IPv6.IsZero() {
		return nil, fmt.Errorf("network.public_ip: ip workload %q has no address (%s %s)", name, ipwl.Result.State, ipwl.Result.Error)
	}
	link := &publicLink{tap: network.PublicTap(wl.Deployment.WorkloadID(name)), gateway: r.Gateway}
	var addrs []netip.Addr
	if !r.IP.IsZero() {
		ip, err := netip.ParsePrefix(r.IP.String())
		if err != nil || !ip.Addr().Is4() || net.ParseIP(r.Gateway).To4() == nil {
			return nil, fmt.Errorf("network.public_ip: ip workload %q: address %s gateway %q: want IPv4", name, r.IP, r.Gateway)
		}
		link.ip = ip
		addrs = append(addrs, ip.Addr())
	}
	if !r.IPv6.IsZero() {
		ip6, err := netip.ParsePrefix(r.IPv6.String())
		if err != nil || !ip6.Addr().Is6() || ip6.Addr().Is4In6() {
			return nil, fmt.Errorf("network.public_ip: ip workload %q: address %s: want IPv6", name, r.IPv6)
		}
		link.ip6 = ip6.Addr()
		addrs = append(addrs, ip6.Addr())
	}
	if err := m.Networks.AttachPublic(link.tap, addrs...); err != nil {
		m.Networks.Detach(link.tap)
		return nil, fmt.Errorf("network.public_ip: %w", err)
	}
	return link, nil
}

// vmAddress checks the interface's IP against the resource's subnet.
func vmAddress(iface gridtypes.MachineInterface, gw netip.Prefix) (netip.Prefix, error) {
	ip, ok := netip.AddrFromSlice(iface.IP.To4())
	if !ok {
		return netip.Prefix{}, fmt.Errorf("network.interfaces[0].ip: %s is not an IPv4 address", iface.IP)
	}
	subnet := gw.Masked()
	if !subnet.Contains(ip) {
		return netip.Prefix{}, fmt.Errorf("network.interfaces[0].ip: %s is not in the network's subnet %s on this node", ip, subnet)
	}
	b := ip.As4()
	if ip == gw.Addr() || b[3] == 0 || b[3] == 255 {
		return netip.Prefix{}, fmt.Errorf("network.interfaces[0].ip: %s is reserved in subnet %s (use .2 to .254)", ip, subnet)
	}
	return netip.PrefixFrom(ip, gw.Bits()), nil
}

// spec prepares the root and the devices and returns the VM to run, in
// the boot mode the flist asks for: /image.raw is a full VM booted from
// its first disk, /boot/vmlinuz a VM with its own kernel over the shared
// root, anything else a container under vminit.
func (m *ZMachineManager) spec(ctx context.Context, wl *provision.Workload, data *gridtypes.ZMachine, tap string, addr netip.Prefix, att network.Attachment) (vm.Spec, error) {
	gw := att.Gateway.Addr()
	info, err := m.Flists.Inspect(ctx, data.FList)
	if err != nil {
		return vm.Spec{}, fmt.Errorf("flist %s: %w", data.FList, err)
	}
	s := vm.Spec{
		Name:      VMName(wl.ID),
		CPUs:      int(data.ComputeCapacity.CPU),
		MemoryMiB: int(data.ComputeCapacity.Memory / gridtypes.Megabyte),
		NICs:      []qemu.NIC{{ID: "n0", Tap: tap, MAC: tapMAC(tap)}},
	}
	if info.ImageRaw >= 0 {
		return s, m.fullVM(ctx, &s, wl, data, info)
	}
	if !info.HasShell && info.Kernel == "" && data.Entrypoint == "" && info.Startup == nil {
		return vm.Spec{}, fmt.Errorf("flist %s is not a root filesystem (no /bin/sh, /image.raw, /boot/vmlinuz or .startup.toml) and the workload gives no entrypoint", data.FList)
	}
	s.Guest.Hostname = wl.Name
	s.Guest.Interfaces = []guest.Interface{{Name: "eth0", Address: addr.String(), Gateway: gw.String()}}
	s.Guest.DNS = m.DNS

	// Root: the flist, writable through an overlay on the rootfs volume.
	vol, err := m.rootfs(wl.ID, uint64(data.RootSize()))
	if err != nil {
		return vm.Spec{}, err
	}
	target := filepath.Join(m.RootfsDir, string(wl.ID))
	if err := os.MkdirAll(target, 0o755); err != nil {
		return vm.Spec{}, err
	}
	if err := m.Flists.MountOverlay(ctx, data.FList, vol.Path, target); err != nil {
		return vm.Spec{}, fmt.Errorf("mounting flist %s: %w", data.FList, err)
	}
	s.RootDir = target
	undo := func() { m.Flists.Unmount(target) }

	if info.Kernel != "" {
		// The flist's own kernel: the entrypoint is its init.
		if s.Boot, err = m.bootFiles(ctx, data.FList, info, vol); err != nil {
			undo()
			return vm.Spec{}, err
		}
		s.Guest.Entrypoint = []string{"/sbin/init"}
		if data.Entrypoint != "" {
			s.Guest.Entrypoint = strings.Fields(data.Entrypoint)
		}
		s.Guest.Env = data.Env
	} else if err := m.entrypoint(&s, data, info, target); err != nil {
		// The workload's entrypoint and env win over the flist's
		// .startup.toml.
		undo()
		return vm.Spec{}, err
	}
	if err := m.devices(&s, wl, data, 0); err != nil {
		undo()
		return vm.Spec{}, err
	}
	return s, nil
}

// bootFiles copies a kernel-mode VM's kernel and initrd out of the
// flist's read-only layer (never the overlay: the guest writes its root
// and would swap /boot/initrd.img for a link to a host file before a
// restart) into boot/ of the root volume, next to the overlay's upper
// and work directories where the guest cannot reach, counted in the VM's
// root size. QEMU reads only these copies; they are taken again at every
// provision (a node restart), so the flist's kernel is the one that
// boots, whatever the guest did to its /boot.
func (m *ZMachineManager) bootFiles(ctx context.Context, url string, info flistd.Info, vol storage.Volume) (vm.Boot, error) {
	ro, _, err := m.Flists.MountRO(ctx, url)
	if err != nil {
		return vm.Boot{}, fmt.Errorf("mounting flist %s: %w", url, err)
	}
	b, err := vm.CopyBootFiles(ro, info.Kernel, info.Initrd, filepath.Join(vol.Path, "boot"))
	if err != nil {
		return vm.Boot{}, fmt.Errorf("flist %s: %w", url, err)
	}
	return b, nil
}

// fullVM prepares a VM that boots the flist's /image.raw from its first
// mount, a zmount: the image is written there once (a disk that already
// carries a file system or partition table is the VM's own by now).
func (m *ZMachineManager) fullVM(ctx context.Context, s *vm.Spec, wl *provision.Workload, data *gridtypes.ZMachine, info flistd.Info) error {
	if len(data.Mounts) == 0 || wl.Deployment.Get(data.Mounts[0].Name) == nil || wl.Deployment.Get(data.Mounts[0].Name).Type != gridtypes.ZMountType {
		return fmt.Errorf("flist %s is a full VM image (/image.raw): the first mount must be a zmount to write it to", data.FList)
	}
	disk, err := m.Storage.DiskLookup(string(wl.Deployment.WorkloadID(data.Mounts[0].Name)))
	if err != nil {
		return fmt.Errorf("mounts[0]: disk %q: %w", data.Mounts[0].Name, err)
	}
	if info.ImageRaw > int64(disk.Size) {
		return fmt.Errorf("flist %s: /image.raw is %d bytes, larger than disk %q (%d bytes)", data.FList, info.ImageRaw, data.Mounts[0].Name, disk.Size)
	}
	sig, err := (blockdev.Blkid{}).Probe(disk.Path)
	if err != nil {
		return fmt.Errorf("probing disk %q: %w", data.Mounts[0].Name, err)
	}
	if sig.Empty() {
		dir, _, err := m.Flists.MountRO(ctx, data.FList)
		if err != nil {
			return fmt.Errorf("mounting flist %s: %w", data.FList, err)
		}
		f, err := os.Open(filepath.Join(dir, "image.raw"))
		if err != nil {
			return fmt.Errorf("flist %s: %w", data.FList, err)
		}
		defer f.Close()
		if err := vm.WriteImage(f, info.ImageRaw, disk.Path); err != nil {
			return fmt.Errorf("flist %s: %w", data.FList, err)
		}
	}
	s.Boot = vm.Boot{Mode: vm.BootDisk}
	s.Disks = []vm.Disk{{Path: disk.Path}}
	return m.devices(s, wl, data, 1)
}

// rootfs creates (or finds) the volume holding the VM's writable layer.
func (m *ZMachineManager) rootfs(id gridtypes.WorkloadID, size uint64) (storage.Volume, error) {
	name := rootfsVolume(id)
	if v, err := m.Storage.VolumeLookup(name); err == nil {
		return v, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storage.Volume{}, err
	}
	v, err := m.Storage.VolumeCreate(name, size)
	if err != nil {
		return storage.Volume{}, fmt.Errorf("creating the root volume: %w", err)
	}
	return v, nil
}

func (m *ZMachineManager) entrypoint(s *vm.Spec, data *gridtypes.ZMachine, info flistd.Info, root string) error {
	env := map[string]string{}
	var ep []string
	if st := info.Startup; st != nil {
		for k, v := range st.Env {
			env[k] = v
		}
		if st.Name != "" {
			ep = append([]string{st.Name}, st.Args...)
		}
		s.Guest.Dir = st.Dir
	}
	for k, v := range data.Env {
		env[k] = v
	}
	if data.Entrypoint != "" {
		ep = strings.Fields(data.Entrypoint)
	}
	if len(ep) == 0 {
		// No entrypoint: the image's own init, if it has one.
		if exists(root, "/sbin/init") {
			ep, s.Guest.Init = []string{"/sbin/init"}, true
		} else {
			return errors.New("entrypoint: the workload gives none, the flist has no .startup.toml and no /sbin/init")
		}
	}
	if !path.IsAbs(ep[0]) {
		return fmt.Errorf("entrypoint %q: not an absolute path", ep[0])
	}
	if !exists(root, ep[0]) {
		return fmt.Errorf("entrypoint %q: no such file in the flist", ep[0])
	}
	if len(env) > 0 {
		s.Guest.Env = env
	}
	s.Guest.Entrypoint = ep
	return nil
}

// exists reports whether p exists in the root at root; a symbolic link
// counts (the guest resolves it inside its own root).
func exists(root, p string) bool {
	_, err := os.Lstat(filepath.Join(root, filepath.Clean("/"+p)))
	return err == nil
}

// devices adds the mounts from the from-th on: zmounts as disks (vminit
// mounts them, formatting a blank one, in container mode), volumes and
// qsfs mounts as virtiofs shares.
func (m *ZMachineManager) devices(s *vm.Spec, wl *provision.Workload, data *gridtypes.ZMachine, from int) error {
	for i := from; i < len(data.Mounts); i++ {
		mnt := data.Mounts[i]
		ref := wl.Deployment.Get(mnt.Name)
		if ref == nil {
			return fmt.Errorf("mounts[%d]: no workload %q in the deployment", i, mnt.Name)
		}
		id := wl.Deployment.WorkloadID(mnt.Name)
		switch ref.Type {
		case gridtypes.ZMountType:
			d, err := m.Storage.DiskLookup(string(id))
			if err != nil {
				return fmt.Errorf("mounts[%d]: disk %q: %w", i, mnt.Name, err)
			}
			s.Disks = append(s.Disks, vm.Disk{Path: d.Path, Mountpoint: mnt.Mountpoint})
		case gridtypes.VolumeType:
			v, err := m.Storage.VolumeLookup(string(id))
			if err != nil {
				return fmt.Errorf("mounts[%d]: volume %q: %w", i, mnt.Name, err)
			}
			s.Shares = append(s.Shares, vm.Share{Dir: v.Path, Mountpoint: mnt.Mountpoint})
		case gridtypes.QuantumSafeFSType:
			if m.QSFS == nil {
				return fmt.Errorf("mounts[%d]: %q is a qsfs, and this node runs no qsfs", i, mnt.Name)
			}
			dir, err := m.QSFS.MountPath(id)
			if err != nil {
				return fmt.Errorf("mounts[%d]: qsfs %q: %w", i, mnt.Name, err)
			}
			s.Shares = append(s.Shares, vm.Share{Dir: dir, Mountpoint: mnt.Mountpoint})
		default:
			return fmt.Errorf("mounts[%d]: %q is a %s, want a zmount, a volume or a qsfs", i, mnt.Name, ref.Type)
		}
	}
	return nil
}

// Deprovision stops the VM and removes its tap, root overlay and root
// volume. Disks and volumes it mounted are workloads of their own.
func (m *ZMachineManager) Deprovision(ctx context.Context, wl *provision.Workload) error {
	m.releaseIPs(wl)
	var errs []error
	if err := m.VMs.Delete(ctx, VMName(wl.ID)); err != nil && !errors.Is(err, vm.ErrNotFound) {
		errs = append(errs, err)
	}
	errs = append(errs, m.Networks.Detach(m.TapName(wl.ID)))
	if data, err := provision.Data[*gridtypes.ZMachine](wl); err == nil {
		if data.Network.PublicIP != "" {
			errs = append(errs, m.Networks.Detach(network.PublicTap(wl.Deployment.WorkloadID(data.Network.PublicIP))))
		}
		errs = append(errs, m.detachPlanetary(wl.ID, data))
	}
	target := filepath.Join(m.RootfsDir, string(wl.ID))
	if err := m.Flists.Unmount(target); err != nil {
		errs = append(errs, err)
	} else {
		os.Remove(target)
	}
	if err := m.Storage.VolumeDelete(rootfsVolume(wl.ID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		errs = append(errs, err)
	}
	if err := m.Flists.GC(); err != nil {
		m.Log.Warn("flist_gc_failed", "err", err)
	}
	return errors.Join(errs...)
}
