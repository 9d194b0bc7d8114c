package primitives

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
)

// The first namespaces of a node, provisioned at once, all find room: the
// first one makes the zdb device, the others wait for it instead of
// seeing a pool already given away and no device yet.
func TestZDBFirstNamespacesAtOnce(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "mkfs.btrfs")
	dir := t.TempDir()
	cfg := storage.Config{Root: filepath.Join(dir, "mnt"), DataDir: filepath.Join(dir, "data"), Prefix: "tz-",
		Disks: []storage.HostedDisk{{Type: storage.SSD, Size: 6 << 30}, {Type: storage.HDD, Size: 2 << 30}}}
	log := testutil.Logger(t)
	st, err := storage.New(cfg, storage.HostSystem(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing storage: %v", err)
		}
		// Last resort when the test failed half way.
		for _, disk := range []string{"tz-disk0.img", "tz-disk1.img"} {
			out, _ := exec.Command("losetup", "-j", filepath.Join(cfg.DataDir, disk)).Output()
			if dev, _, ok := strings.Cut(string(out), ":"); ok {
				exec.Command("umount", "-l", dev).Run()
				exec.Command("losetup", "-d", dev).Run()
			}
		}
	})
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := NewZDBManager(ZDBConfig{Port: 9900}, st, zdb.NewServer(zdb.ServerConfig{}, log), func() []string { return []string{"127.0.0.1"} }, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &gridtypes.Deployment{TwinID: 1, ContractID: uint64(i + 1)}
			data, _ := json.Marshal(gridtypes.ZDB{Size: 64 << 20, Mode: "user"})
			wl := &provision.Workload{Workload: gridtypes.Workload{Name: "db", Type: gridtypes.ZDBType, Data: data}, ID: d.WorkloadID("db"), Deployment: d}
			_, errs[i] = m.Provision(context.Background(), wl)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("namespace %d: %v", i+1, err)
		}
	}
	if devs, _ := st.Devices(); len(devs) != 1 {
		t.Errorf("devices: %+v, want one", devs)
	}
}
