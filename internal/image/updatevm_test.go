package image_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/cli"
	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/testutil"
)

// updateVMScript is the entrypoint of the VM that lives through the live
// updates: it counts its boots on its disk at /data (a QEMU started again
// boots it again: boots=2), then writes a growing tick to its console
// every 2 s (a VM that stopped, or was frozen, stops ticking).
const updateVMScript = `#!/bin/sh
echo boot >> /data/boots
sync
n=$(wc -l < /data/boots)
i=0
while :; do
	i=$((i+1))
	echo "upvm boots=$n tick=$i"
	sleep 2
done
`

// updateVMRootfs makes a busybox root (the host's static busybox) with the
// entrypoint /start.sh.
func updateVMRootfs(t testing.TB, dir string) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		testutil.Skip(t, "no busybox for the VM's root")
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "wc", "sleep", "sync", "mount", "ip"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "start.sh"), []byte(updateVMScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// guestFlist builds the VM's root into the grid's hub on the host (at
// 127.0.0.1) and pushes it as the flist the guest reads: its block route
// and its URL name the hub as the guest reaches it (10.0.2.2), so the
// node fetches both through its egress_allow=10.0.2.2.
func guestFlist(t *testing.T, e *imageEnv) string {
	t.Helper()
	root := t.TempDir()
	updateVMRootfs(t, root)
	hostHub := fmt.Sprintf("http://127.0.0.1:%d", e.hubPort)
	guestHub := fmt.Sprintf("http://10.0.2.2:%d", e.hubPort)
	built := filepath.Join(t.TempDir(), "upvm-built.fl")
	zosctl(t, e.user, e.gridURL, "flist", "build", root, "-o", built, "--store", hostHub)
	m, err := flist.Open(context.Background(), built)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Routes {
		if m.Routes[i].URL != hostHub {
			t.Fatalf("the built flist's route is %s, want %s", m.Routes[i], hostHub)
		}
		m.Routes[i].URL = guestHub
	}
	fl := filepath.Join(t.TempDir(), "upvm.fl")
	if err := flist.Write(context.Background(), fl, m); err != nil {
		t.Fatal(err)
	}
	out := zosctl(t, e.user, e.gridURL, "flist", "push", fl, "--hub", hostHub)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, hostHub+"/") {
			return guestHub + strings.TrimPrefix(strings.Fields(l)[0], hostHub)
		}
	}
	t.Fatalf("flist push printed no URL: %q", out)
	return ""
}

// updateVM is a container VM on the booted node whose console is read
// through the grid (zosctl logs).
type updateVM struct {
	e        *imageEnv
	contract uint64
	tick     int // the last tick seen
}

// deployUpdateVM deploys the ticking VM on the node (a network, 256 MiB,
// a 1 GiB disk at /data) and waits for its first tick. The VM's root and
// disk need SSD capacity: the node types its first disk by seek time
// (under 500 µs is an SSD), and on a loaded host it measures both disks as
// HDDs and refuses the VM for capacity ("SSD needs ... 0 free").
func deployUpdateVM(t *testing.T, e *imageEnv, nodeID string) *updateVM {
	t.Helper()
	url := guestFlist(t, e)
	zosctl(t, e.user, e.gridURL, "network", "create", "--name", "upnet", "--nodes", nodeID, "--ip-range", "10.30.0.0/16")
	t0 := time.Now()
	var d gridtypes.Deployment
	if err := json.Unmarshal([]byte(zosctl(t, e.user, e.gridURL, "deploy", "vm", "--node", nodeID, "--flist", url,
		"--network", "upnet", "--memory", "256M", "--entrypoint", "/start.sh", "--disk", "1G:/data", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if wl := d.Get("vm"); wl == nil || wl.Result.State != gridtypes.StateOk {
		t.Fatalf("vm workload: %+v", wl)
	}
	u := &updateVM{e: e, contract: d.ContractID}
	u.ticking(t, "after its deployment")
	t.Logf("FIGURE vm_deploy_to_first_tick=%s (nested tcg)", time.Since(t0).Round(100*time.Millisecond))
	return u
}

var tickRe = regexp.MustCompile(`upvm boots=(\d+) tick=(\d+)`)

// ticking waits until the VM's console shows a tick past the last one
// seen, and fails when it shows a second boot (QEMU started again).
func (u *updateVM) ticking(t *testing.T, when string) {
	t.Helper()
	var last string
	// Every 2 s at most: each try is a call through the grid into the
	// tcg guest.
	err := testutil.PollEvery(4*time.Minute, 2*time.Second, func() (bool, error) {
		var out, errb bytes.Buffer
		env := map[string]string{"ZOSCTL_HOME": u.e.user, "ZOS_GRID": u.e.gridURL}
		if cli.Run(context.Background(), []string{"logs", strconv.FormatUint(u.contract, 10), "vm"},
			cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}) != 0 {
			return false, fmt.Errorf("zosctl logs: %s", strings.TrimSpace(errb.String()))
		}
		last = out.String()
		ms := tickRe.FindAllStringSubmatch(last, -1)
		if len(ms) == 0 {
			return false, fmt.Errorf("no tick yet")
		}
		for _, m := range ms {
			if m[1] != "1" {
				t.Fatalf("the VM booted again %s (boots=%s): its QEMU was restarted\n%s", when, m[1], last)
			}
		}
		n, _ := strconv.Atoi(ms[len(ms)-1][2])
		if n <= u.tick {
			return false, fmt.Errorf("tick %d, not past %d", n, u.tick)
		}
		u.tick = n
		return true, nil
	})
	if err != nil {
		t.Fatalf("the VM's console %s: %v; last log:\n%s", when, err, last)
	}
}

var adoptedRe = regexp.MustCompile(`msg=vm_adopted .*pid=(\d+)`)

// adoptedPids are the QEMU pids the node logged adopting, in order.
func adoptedPids(console string) []string {
	var pids []string
	for _, m := range adoptedRe.FindAllStringSubmatch(console, -1) {
		pids = append(pids, m[1])
	}
	return pids
}

// sameQEMU checks the node adopted the VM at least n times, always the
// same QEMU process.
func sameQEMU(t *testing.T, v *vm, n int, when string) {
	t.Helper()
	var pids []string
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%d adoptions of the VM", n), func() (bool, error) {
		pids = adoptedPids(v.out.String())
		return len(pids) >= n, nil
	})
	for _, p := range pids {
		if p != pids[0] {
			t.Fatalf("%s the node adopted QEMU pids %v, want one process", when, pids)
		}
	}
	t.Logf("%s: the VM's QEMU adopted as pid %s (%d adoptions)", when, pids[0], len(pids))
}
