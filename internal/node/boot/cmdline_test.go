package boot

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
)

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(" a=1  b=\"x y\"\tc \n")
	want := []string{"a=1", "b=x y", "c"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseCmdline(t *testing.T) {
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := registry.NewFarmToken(key, 5, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	token5 := tok.String()
	tests := []struct {
		name, defaults, cmdline string
		want                    Config
		errs                    int
	}{
		{"baked defaults", "farm=3 grid=nats://10.0.2.2:4222", "console=ttyS0 quiet",
			Config{Farm: 3, Grid: "nats://10.0.2.2:4222", RunMode: "prod"}, 0},
		{"command line wins", "farm=3 grid=nats://a:1", "farm=7 grid=nats://b:2 runmode=dev zos-debug",
			Config{Farm: 7, Grid: "nats://b:2", RunMode: "dev", Debug: true}, 0},
		{"original farmer_id", "", "farmer_id=9 grid=nats://g", Config{Farm: 9, Grid: "nats://g", RunMode: "prod"}, 0},
		{"garbage is reported, defaults kept", "farm=3 grid=nats://a:1", "farm=x grid=http://b runmode=fast farm=0 \x00\xff",
			Config{Farm: 3, Grid: "nats://a:1", RunMode: "prod"}, 4},
		{"bad port", "", "grid=nats://a:99999", Config{RunMode: "prod"}, 1},
		{"several grids", "", "grid=nats://a:1,nats://b:2", Config{Grid: "nats://a:1,nats://b:2", RunMode: "prod"}, 0},
		{"farm token names the farm", "grid=nats://a:1", "farm_token=" + token5,
			Config{Farm: 5, FarmToken: token5, Grid: "nats://a:1", RunMode: "prod"}, 0},
		{"farm token and its farm", "farm=5", "farm_token=" + token5, Config{Farm: 5, FarmToken: token5, RunMode: "prod"}, 0},
		{"later farm= drops another farm's token", "farm_token=" + token5, "farm=7", Config{Farm: 7, RunMode: "prod"}, 1},
		{"later token wins over farm=", "farm=7", "farm_token=" + token5, Config{Farm: 5, FarmToken: token5, RunMode: "prod"}, 0},
		{"bad token is reported, farm kept", "farm=3", "farm_token=zft1_nope", Config{Farm: 3, RunMode: "prod"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := ParseCmdline(tt.defaults, tt.cmdline)
			if got != tt.want || len(errs) != tt.errs {
				t.Fatalf("got %+v with %d errors %v, want %+v with %d", got, len(errs), errs, tt.want, tt.errs)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "no farm") || !strings.Contains(err.Error(), "no grid") {
		t.Fatalf("got %v, want both missing settings reported", err)
	}
	if err := (Config{Farm: 1, Grid: "nats://a"}).Validate(); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("farm=1 grid=nats://a:1 runmode=dev zos-debug")
	f.Add(`grid="nats://x" farm=`)
	f.Add("farm=2 farm_token=zft1_AAAA farm_token=")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, errs := ParseCmdline("", s)
		if cfg.RunMode == "" {
			t.Fatal("empty run mode")
		}
		_ = fmt.Sprint(errs)
	})
}

func TestParseListenLine(t *testing.T) {
	tests := []struct {
		line, want string
		ok         bool
	}{
		{"   0: 0F02000A:26AC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1", "10.0.2.15:9900", true},
		{"   1: 0100007F:0016 0F02000A:9C40 01 00000000:00000000", "", false}, // established
		{"   2: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A", "[::]:8080", true},
		{"  sl  local_address rem_address   st", "", false},
		{"   3: zz:zz 0 0A", "", false},
	}
	for _, tt := range tests {
		got, ok := parseListenLine(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%q: got %q %v, want %q %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSelectModules(t *testing.T) {
	list := parseLoadList(strings.Join([]string{
		"kernel/drivers/virtio/virtio.ko\t\t",
		"kernel/drivers/virtio/virtio_ring.ko\t\t",
		"kernel/drivers/virtio/virtio_mmio.ko\tvirtio,virtio_ring\tacpi*:LNRO0005:* of:N*T*Cvirtio,mmio",
		"kernel/drivers/block/virtio_blk.ko\tvirtio,virtio_ring\tvirtio:d00000002v*",
		"kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko\t\tpci:v00008086d000010D3sv*sd*bc*sc*i*",
		"kernel/lib/libcrc32c.ko\t\t",
		"kernel/fs/btrfs/btrfs.ko\tlibcrc32c\t*",
		"",
		"# comment",
	}, "\n"))
	names := func(es []modEntry) string {
		var n []string
		for _, e := range es {
			n = append(n, e.Name)
		}
		return strings.Join(n, " ")
	}
	tried := map[string]bool{}
	got := names(selectModules(list, []string{"acpi:LNRO0005:", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}, tried))
	if want := "virtio virtio_ring virtio_mmio libcrc32c btrfs"; got != want {
		t.Fatalf("round 1: got %q, want %q", got, want)
	}
	for _, n := range strings.Fields(got) {
		tried[n] = true
	}
	got = names(selectModules(list, []string{"acpi:LNRO0005:", "virtio:d00000002v00554D45"}, tried))
	if want := "virtio_blk"; got != want {
		t.Fatalf("round 2: got %q, want %q", got, want)
	}
}

func TestRender(t *testing.T) {
	s := Screen{Version: "v1", Config: Config{Farm: 2, Grid: "nats://g", RunMode: "prod"}, Network: "eth0 10.0.2.15/24",
		NodeUp: true, Node: NodeStatus{State: "registered", NodeID: 5, Modules: map[string]string{"grid": "dial: refused", "storage": "ok"}},
		Listening: []string{"10.0.2.15:9900"}, Errors: []string{"kernel command line: farm=\"x\" is not a farm id"}}
	out := s.Render()
	for _, want := range []string{"node:      5", "farm:      2", "(registered)", "eth0 10.0.2.15/24", "error:     grid: dial: refused",
		"farm=\"x\" is not a farm id", "zos-status node=5 farm=2 state=registered listening=10.0.2.15:9900"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%s", want, out)
		}
	}
}

// TestModuleStates: the node reports its modules' states to the sink;
// the console shows the failing ones, and a module that recovers is no
// longer shown.
func TestModuleStates(t *testing.T) {
	var m moduleStates
	m.ModuleStatus("grid", "dial tcp 10.0.2.2:1: connection refused")
	m.ModuleStatus("storage", "ok")
	m.ModuleStatus("registration", "farm 9 does not exist")
	m.ModuleStatus("registration", "ok")
	want := map[string]string{"grid": "dial tcp 10.0.2.2:1: connection refused", "storage": "ok", "registration": "ok"}
	if got := m.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	out := Screen{NodeUp: true, Node: NodeStatus{Modules: m.snapshot()}}.Render()
	if !strings.Contains(out, "error:     grid: dial tcp 10.0.2.2:1: connection refused") || strings.Contains(out, "registration") {
		t.Fatalf("got screen\n%s\nwant the grid's error only", out)
	}
}

// TestParseCmdlineUpdateAndRecovery: the self-update settings and the
// recovery switches of a booted node come from the command line; bad
// values are reported and leave the setting unset.
func TestParseCmdlineUpdateAndRecovery(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	base := Config{RunMode: "prod"}
	with := func(f func(*Config)) Config { c := base; f(&c); return c }
	tests := []struct {
		name, defaults, cmdline string
		want                    Config
		errs                    int
	}{
		{"update by hash", "", "update_hub=http://10.0.2.2:8081 update_root=sha256:" + hash + " update_channel=testing",
			with(func(c *Config) {
				c.UpdateHub, c.UpdateRoot, c.UpdateChannel = "http://10.0.2.2:8081", "sha256:"+hash, "testing"
			}), 0},
		{"root baked in the image, hub on the command line", "update_root=/etc/zos/release-root.json", "update_hub=https://hub.grid",
			with(func(c *Config) { c.UpdateHub, c.UpdateRoot = "https://hub.grid", "/etc/zos/release-root.json" }), 0},
		{"recovery switches", "", "new_identity recreate_missing_disks=1",
			with(func(c *Config) { c.NewIdentity, c.RecreateMissingDisks = true, true }), 0},
		{"a later =0 turns a baked switch off", "new_identity", "new_identity=0", base, 0},
		{"location", "location=Belgium", `location="Belgium,Sint-Martens-Latem"`, with(func(c *Config) { c.Location = "Belgium,Sint-Martens-Latem" }), 0},
		{"bad location is reported, the baked one kept", "location=Belgium", "location=,Ghent", with(func(c *Config) { c.Location = "Belgium" }), 1},
		{"bad hub scheme", "", "update_hub=nats://a:1", base, 1},
		{"hub with a path", "", "update_hub=http://a/api", base, 1},
		{"short hash", "", "update_root=sha256:abcd", base, 1},
		{"relative root path", "", "update_root=root.json", base, 1},
		{"root path escaping", "", "update_root=/etc/../root.json", base, 1},
		{"bad channel", "", "update_channel=../x", base, 1},
		{"update timings", "update_every=5s", "update_gate=40s",
			with(func(c *Config) { c.UpdateEvery, c.UpdateGate = 5*time.Second, 40*time.Second }), 0},
		{"timings out of range or not durations", "", "update_every=10ms update_gate=forever update_gate=48h", base, 3},
		{"egress allow", "", "egress_allow=10.0.2.2,private", with(func(c *Config) { c.EgressAllow = "10.0.2.2,private" }), 0},
		{"bad egress allow is reported, the baked one kept", "egress_allow=10.0.2.2", "egress_allow=10.0.2.2,everywhere",
			with(func(c *Config) { c.EgressAllow = "10.0.2.2" }), 1},
		{"bad values keep the good ones", "update_hub=http://h:1", "update_hub=ftp://x update_root=sha256:zz",
			with(func(c *Config) { c.UpdateHub = "http://h:1" }), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := ParseCmdline(tt.defaults, tt.cmdline)
			if got != tt.want || len(errs) != tt.errs {
				t.Fatalf("got %+v with %d errors %v, want %+v with %d", got, len(errs), errs, tt.want, tt.errs)
			}
		})
	}
}

// TestNodeArgs: what the command line turned on reaches the node child as
// its flags; self-update only with both a hub and a root.
func TestNodeArgs(t *testing.T) {
	base := "/init init node --farm 3 --grid nats://g:1 --listen 10.0.2.15 --data " + DataDir + " --status " + StatusFile
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"plain", Config{Farm: 3, Grid: "nats://g:1"}, base},
		{"recovery", Config{Farm: 3, Grid: "nats://g:1", NewIdentity: true, RecreateMissingDisks: true},
			base + " --new-identity --recreate-missing-disks"},
		{"update", Config{Farm: 3, Grid: "nats://g:1", UpdateHub: "http://h:1", UpdateRoot: "sha256:ab", UpdateChannel: "testing"},
			base + " --update-hub http://h:1 --update-root sha256:ab --update-channel testing --update-gate 2m0s"},
		{"update timings", Config{Farm: 3, Grid: "nats://g:1", UpdateHub: "http://h:1", UpdateRoot: "sha256:ab", UpdateEvery: 5 * time.Second, UpdateGate: 40 * time.Second},
			base + " --update-hub http://h:1 --update-root sha256:ab --update-every 5s --update-gate 40s"},
		{"a hub without a root does not update", Config{Farm: 3, Grid: "nats://g:1", UpdateHub: "http://h:1"}, base},
		{"location", Config{Farm: 3, Grid: "nats://g:1", Location: "Egypt,Cairo"}, base + " --location Egypt,Cairo"},
		{"egress allow", Config{Farm: 3, Grid: "nats://g:1", EgressAllow: "10.0.2.2,private"},
			base + " --egress-allow 10.0.2.2 --egress-allow private"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(NodeArgs("/init", tt.cfg, "10.0.2.15"), " "); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
