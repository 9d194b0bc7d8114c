package primitives

import (
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
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/vm"
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

func TestUnsupportedNetwork(t *testing.T) {
	if err := unsupportedNetwork(gridtypes.MachineNetwork{}); err != nil {
		t.Errorf("a private interface only: %v", err)
	}
	for _, n := range []gridtypes.MachineNetwork{
		{Planetary: true}, {Mycelium: &gridtypes.MyceliumIP{Network: "net"}},
	} {
		if err := unsupportedNetwork(n); err == nil {
			t.Errorf("%+v: accepted", n)
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
