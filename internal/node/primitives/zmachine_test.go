package primitives

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/flistd"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/vm"
	"github.com/zos-go/zos/internal/testutil"
)

func TestVMAddress(t *testing.T) {
	gw := netip.MustParsePrefix("10.20.3.1/24")
	for ip, want := range map[string]string{
		"10.20.3.7":   "10.20.3.7/24",
		"10.20.3.254": "10.20.3.254/24",
		"10.20.4.7":   "not in the network's subnet",
		"10.20.3.1":   "reserved",
		"10.20.3.0":   "reserved",
		"10.20.3.255": "reserved",
		"fd00::7":     "not an IPv4 address",
	} {
		p, err := vmAddress(gridtypes.MachineInterface{Network: "net", IP: net.ParseIP(ip)}, gw)
		got := p.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want %q", ip, got, want)
		}
	}
}

func TestTapNames(t *testing.T) {
	a := &ZMachineManager{Prefix: "n1"}
	b := &ZMachineManager{Prefix: "n2"}
	id := gridtypes.NewWorkloadID(12, 345, "a_rather_long_vm_name")
	ta, tb := a.TapName(id), b.TapName(id)
	if len(ta) > 15 || !strings.HasPrefix(ta, "t-") {
		t.Errorf("tap %q: want t-... of at most 15 characters", ta)
	}
	if ta == tb {
		t.Errorf("two nodes sharing a host give the same tap %q", ta)
	}
	if ta != a.TapName(id) {
		t.Error("the tap name is not stable")
	}
	mac := tapMAC(ta)
	if !regexp.MustCompile(`^02(:[0-9a-f]{2}){5}$`).MatchString(mac) {
		t.Errorf("mac %q: want a locally administered unicast address", mac)
	}
}

// What the node cannot give a VM is refused with the field that asks for
// it, never silently dropped.
func TestUnsupported(t *testing.T) {
	if err := unsupported(&gridtypes.ZMachine{}); err != nil {
		t.Errorf("a private interface only: %v", err)
	}
	for _, tt := range []struct {
		m    gridtypes.ZMachine
		want string
	}{
		{gridtypes.ZMachine{Network: gridtypes.MachineNetwork{Mycelium: &gridtypes.MyceliumIP{Network: "net"}}}, "network.mycelium"},
		{gridtypes.ZMachine{GPU: []gridtypes.GPU{"0000:0e:00.0/1002/744c"}}, "no GPU 0000:0e:00.0/1002/744c on this node"},
		{gridtypes.ZMachine{Corex: true}, "corex"},
	} {
		err := unsupported(&tt.m)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want an error naming %q", tt.m, err, tt.want)
		}
	}
}

// The workload's entrypoint and env win over the flist's .startup.toml;
// without either the image's /sbin/init runs as init; an entrypoint that
// is not in the root is refused.
func TestEntrypoint(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"bin/app", "bin/other"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	startup := &flistd.Startup{Name: "/bin/app", Args: []string{"-v"}, Env: map[string]string{"A": "flist", "B": "flist"}, Dir: "/srv"}
	m := &ZMachineManager{}
	cases := []struct {
		name    string
		data    gridtypes.ZMachine
		info    flistd.Info
		want    []string
		env     map[string]string
		init    bool
		wantErr string
	}{
		{"startup", gridtypes.ZMachine{Env: map[string]string{"A": "user"}}, flistd.Info{Startup: startup},
			[]string{"/bin/app", "-v"}, map[string]string{"A": "user", "B": "flist"}, false, ""},
		{"user wins", gridtypes.ZMachine{Entrypoint: "/bin/other --x"}, flistd.Info{Startup: startup},
			[]string{"/bin/other", "--x"}, map[string]string{"A": "flist", "B": "flist"}, false, ""},
		{"missing", gridtypes.ZMachine{Entrypoint: "/bin/nope"}, flistd.Info{}, nil, nil, false, "no such file in the flist"},
		{"relative", gridtypes.ZMachine{Entrypoint: "bin/app"}, flistd.Info{}, nil, nil, false, "not an absolute path"},
		{"nothing", gridtypes.ZMachine{}, flistd.Info{}, nil, nil, false, "no /sbin/init"},
	}
	for _, c := range cases {
		var s vm.Spec
		err := m.entrypoint(&s, &c.data, c.info, root)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: got %v, want an error about %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(s.Guest.Entrypoint, c.want) || !reflect.DeepEqual(s.Guest.Env, c.env) || s.Guest.Init != c.init {
			t.Errorf("%s: got %v %v init=%v, want %v %v init=%v", c.name, s.Guest.Entrypoint, s.Guest.Env, s.Guest.Init, c.want, c.env, c.init)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin", "init")); err != nil {
		t.Fatal(err)
	}
	var s vm.Spec
	if err := m.entrypoint(&s, &gridtypes.ZMachine{}, flistd.Info{}, root); err != nil || !s.Guest.Init || s.Guest.Entrypoint[0] != "/sbin/init" {
		t.Errorf("the image's own init: got %v %v, %v", s.Guest.Entrypoint, s.Guest.Init, err)
	}
}

// Two VMs of a twin cannot take one address on one network; another
// network, or another twin's network of the same name, is another space.
func TestClaimIP(t *testing.T) {
	m := &ZMachineManager{}
	wl := func(twin uint32, contract uint64, name string) *provision.Workload {
		d := &gridtypes.Deployment{TwinID: twin, ContractID: contract}
		return &provision.Workload{ID: d.WorkloadID(name), Deployment: d}
	}
	ip := net.ParseIP("10.20.2.5")
	a, b := wl(1, 1, "a"), wl(1, 2, "b")
	if err := m.claimIP(a, "net", ip); err != nil {
		t.Fatal(err)
	}
	if err := m.claimIP(a, "net", ip); err != nil {
		t.Errorf("the same VM again (a restart): %v", err)
	}
	if err := m.claimIP(b, "net", ip); err == nil || !strings.Contains(err.Error(), "used by VM 1-1-a") {
		t.Errorf("another VM on the same address: got %v", err)
	}
	if err := m.claimIP(b, "other", ip); err != nil {
		t.Errorf("another network: %v", err)
	}
	if err := m.claimIP(wl(2, 3, "c"), "net", ip); err != nil {
		t.Errorf("another twin's network: %v", err)
	}
	m.releaseIPs(a)
	if err := m.claimIP(wl(1, 4, "d"), "net", ip); err != nil {
		t.Errorf("after the first VM went: %v", err)
	}
}

// zmFlists is a flist module over directories: the read-only layer is
// ro; MountOverlay shows the guest's view in the target (what the guest
// left in its root: overlay).
type zmFlists struct {
	info    flistd.Info
	ro      string
	overlay map[string]string // path in the root -> symlink target
}

func (f *zmFlists) Inspect(context.Context, string) (flistd.Info, error) { return f.info, nil }
func (f *zmFlists) MountOverlay(_ context.Context, _, _, target string) error {
	for p, to := range f.overlay {
		full := filepath.Join(target, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		os.Remove(full)
		if err := os.Symlink(to, full); err != nil {
			return err
		}
	}
	return nil
}
func (f *zmFlists) Unmount(string) error                                    { return nil }
func (f *zmFlists) MountRO(context.Context, string) (string, string, error) { return f.ro, "hash", nil }
func (f *zmFlists) GC() error                                               { return nil }

// zmVolumes keeps volumes as directories under dir.
type zmVolumes struct{ dir string }

func (v zmVolumes) VolumeCreate(name string, size uint64) (storage.Volume, error) {
	p := filepath.Join(v.dir, name)
	return storage.Volume{Name: name, Path: p, Size: size}, os.MkdirAll(p, 0o755)
}
func (v zmVolumes) VolumeUpdate(name string, size uint64) (storage.Volume, error) {
	return v.VolumeCreate(name, size)
}
func (v zmVolumes) VolumeDelete(name string) error { return os.RemoveAll(filepath.Join(v.dir, name)) }
func (v zmVolumes) VolumeLookup(name string) (storage.Volume, error) {
	p := filepath.Join(v.dir, name)
	if _, err := os.Stat(p); err != nil {
		return storage.Volume{}, storage.ErrNotFound
	}
	return storage.Volume{Name: name, Path: p}, nil
}
func (v zmVolumes) DiskLookup(name string) (storage.VDisk, error) {
	return storage.VDisk{}, storage.ErrNotFound
}

// TestKernelModeBootFiles: a kernel-mode VM boots the kernel and initrd
// of the flist's read-only layer, copied into its root volume beside the
// overlay, never the paths of its writable root. The attack: the guest
// replaced /boot/vmlinuz and /boot/initrd.img of its root with links to
// a host file (the node key) and crashed; the next provision (a node
// restart) must give QEMU the flist's files, not the key. A flist whose
// own boot files are links, or too large, is refused.
func TestKernelModeBootFiles(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(secret, []byte("NODE-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	flist := func(t *testing.T) string {
		ro := t.TempDir()
		for p, data := range map[string]string{"boot/vmlinuz": "flist kernel", "boot/initrd.img": "flist initrd", "sbin/init": ""} {
			if err := os.MkdirAll(filepath.Join(ro, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ro, p), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return ro
	}
	d := &gridtypes.Deployment{TwinID: 7, ContractID: 9}
	wl := &provision.Workload{Workload: gridtypes.Workload{Name: "kvm"}, ID: d.WorkloadID("kvm"), Deployment: d}
	data := &gridtypes.ZMachine{FList: "https://hub.example/k.flist",
		ComputeCapacity: gridtypes.MachineCapacity{CPU: 1, Memory: 256 * gridtypes.Megabyte}}
	info := flistd.Info{ImageRaw: -1, Kernel: "/boot/vmlinuz", Initrd: "/boot/initrd.img", HasShell: true}
	att := network.Attachment{Gateway: netip.MustParsePrefix("10.20.3.1/24")}
	addr := netip.MustParsePrefix("10.20.3.7/24")
	guestLinks := map[string]string{"boot/vmlinuz": secret, "boot/initrd.img": secret}
	newManager := func(t *testing.T, fl *zmFlists) (*ZMachineManager, string) {
		vols := t.TempDir()
		return &ZMachineManager{Storage: zmVolumes{vols}, Flists: fl, RootfsDir: t.TempDir(),
			Log: testutil.Logger(t)}, vols
	}

	t.Run("guest links in the root", func(t *testing.T) {
		fl := &zmFlists{info: info, ro: flist(t), overlay: guestLinks}
		m, vols := newManager(t, fl)
		s, err := m.spec(context.Background(), wl, data, "t-x", addr, att)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		bootDir := filepath.Join(vols, rootfsVolume(wl.ID), "boot")
		for _, c := range []struct{ got, want, data string }{
			{s.Boot.Kernel, filepath.Join(bootDir, "vmlinuz"), "flist kernel"},
			{s.Boot.Initrd, filepath.Join(bootDir, "initrd.img"), "flist initrd"},
		} {
			if c.got != c.want {
				t.Errorf("boot file: got %s, want the copy %s", c.got, c.want)
			}
			if strings.HasPrefix(c.got, s.RootDir+"/") {
				t.Errorf("boot file %s is in the guest's root %s", c.got, s.RootDir)
			}
			b, err := os.ReadFile(c.got)
			if err != nil || string(b) != c.data {
				t.Errorf("%s: got %q, %v; want %q (the flist's, not the guest's link)", c.got, b, err, c.data)
			}
			if st, err := os.Lstat(c.got); err != nil || !st.Mode().IsRegular() {
				t.Errorf("%s: got %v, %v; want a regular file", c.got, st, err)
			}
		}
	})

	refused := []struct {
		name string
		mod  func(t *testing.T, ro string)
	}{
		{"flist kernel is a link to the host", func(t *testing.T, ro string) {
			os.Remove(filepath.Join(ro, "boot/vmlinuz"))
			if err := os.Symlink(secret, filepath.Join(ro, "boot/vmlinuz")); err != nil {
				t.Fatal(err)
			}
		}},
		{"flist initrd is a relative link", func(t *testing.T, ro string) {
			os.Remove(filepath.Join(ro, "boot/initrd.img"))
			if err := os.Symlink("../../../../../../../../.."+secret, filepath.Join(ro, "boot/initrd.img")); err != nil {
				t.Fatal(err)
			}
		}},
		{"flist /boot is a link", func(t *testing.T, ro string) {
			if err := os.Rename(filepath.Join(ro, "boot"), filepath.Join(ro, "realboot")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("realboot", filepath.Join(ro, "boot")); err != nil {
				t.Fatal(err)
			}
		}},
		{"flist kernel too large", func(t *testing.T, ro string) {
			if err := os.Truncate(filepath.Join(ro, "boot/vmlinuz"), vm.MaxKernelSize+1); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			ro := flist(t)
			tt.mod(t, ro)
			m, _ := newManager(t, &zmFlists{info: info, ro: ro})
			_, err := m.spec(context.Background(), wl, data, "t-x", addr, att)
			if !errors.Is(err, vm.ErrBootFile) {
				t.Fatalf("got %v, want %v", err, vm.ErrBootFile)
			}
		})
	}
}
