package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

// TestExamplesDecode: every file of examples/ decodes, passes the checks
// zosctl deploy makes, and together they show every workload type a
// user writes by hand.
func TestExamplesDecode(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	seen := map[gridtypes.WorkloadType]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), "#") {
				t.Errorf("%s does not start with a comment saying what it is", f)
			}
			d, err := decodeDeployment(b)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			if err := complete(d, 7); err != nil {
				t.Fatalf("validating: %v", err)
			}
			for _, wl := range d.Workloads {
				seen[wl.Type] = true
			}
		})
	}
	for _, want := range []gridtypes.WorkloadType{gridtypes.ZMachineType, gridtypes.ZMountType, gridtypes.VolumeType, gridtypes.NetworkType,
		gridtypes.ZDBType, gridtypes.QuantumSafeFSType, gridtypes.GatewayNameProxyType, gridtypes.GatewayFQDNProxyType} {
		if !seen[want] {
			t.Errorf("no example has a %s workload", want)
		}
	}
}

// TestDecodeDeploymentYAML12: names YAML 1.1 reads as booleans stay
// strings, sizes take units, and bad input is refused with the place
// named.
func TestDecodeDeploymentYAML12(t *testing.T) {
	const vm = `
workloads:
  - {name: no, type: zmount, data: {size: 1G}}
  - {name: "on", type: volume, data: {size: 512M}}
  - name: y
    type: zmachine
    data:
      flist: https://hub.grid.tf/x.flist
      size: 2g
      compute_capacity: {cpu: 1, memory: 512MiB}
      network: {interfaces: [{network: n, ip: 10.20.2.2}]}
      mounts: [{name: no, mountpoint: /data}, {name: "on", mountpoint: /v}]
  - {name: n, type: zdb, data: {size: 10737418240, mode: user}}
`
	d, err := decodeDeployment([]byte(vm))
	if err != nil {
		t.Fatal(err)
	}
	if err := complete(d, 1); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, wl := range d.Workloads {
		names = append(names, wl.Name)
	}
	if got := strings.Join(names, ","); got != "no,on,y,n" {
		t.Fatalf("names: got %s, want no,on,y,n", got)
	}
	c, err := d.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(1<<30 + 512<<20 + 2<<30); c.SRU != want {
		t.Errorf("sru: got %d, want %d (1G disk + 512M volume + 2g root)", c.SRU, want)
	}
	if c.MRU != 512<<20 {
		t.Errorf("mru: got %d, want %d", c.MRU, 512<<20)
	}
	if c.HRU != 10<<30 {
		t.Errorf("hru: got %d, want %d (the zdb)", c.HRU, 10<<30)
	}

	for _, tt := range []struct{ name, in, want string }{
		{"bad size", "workloads:\n  - {name: d, type: zmount, data: {size: 1X}}\n", "workloads[0] (d): data.size"},
		{"nested bad size", "workloads:\n  - {name: m, type: zmachine, data: {compute_capacity: {memory: lots}}}\n", "data.compute_capacity.memory"},
		{"duplicate key", "workloads: []\nworkloads: []\n", "already defined"},
		{"not a mapping", "- a\n- b\n", "not a mapping"},
		{"empty", "  \n", "empty"},
		{"bad json", "{\"workloads\": 3}", "decoding deployment"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeDeployment([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
