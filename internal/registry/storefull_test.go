package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/testutil"
)

// TestStoreFullRefusesWritesServesReads runs the registry on a server
// whose store is a 16 MiB tmpfs, guarded by the server's reserve. With the
// file system filled under the reserve (leave) or to the last byte (0),
// every write is refused at once with ErrStoreFull saying how much is
// free, reads answer as before; with the filler removed, writes work again
// without a restart and nothing written before is lost. Without a reserve
// a write meets the full file system in JetStream, which then acknowledges
// no write until restarted: the store says so (writes are refused at once
// again) and the server restarts JetStream once there is room; the twin
// keys the relay checks still follow the index after that.
func TestStoreFullRefusesWritesServesReads(t *testing.T) {
	for _, tt := range []struct {
		name    string
		leave   int64
		reserve int64
	}{
		{"under the reserve", 128 << 10, 0},
		{"to the last byte", 0, 0},
		{"without a reserve JetStream fails a write", 0, natsd.NoReserve},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := testutil.MountTmpfs(t, "16m")
			srv, err := natsd.Start(natsd.Config{StoreDir: filepath.Join(dir, "store"), Port: natsd.RandomPort,
				StoreReserve: tt.reserve, SpaceInterval: 50 * time.Millisecond}, testutil.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			nc := connect(t, srv.ClientURL())
			svc := startService(t, nc, Config{Replicas: 1, Store: srv})
			g := &grid{srv: srv, nc: nc, svc: svc}
			ctx := context.Background()

			// What is acknowledged before the store fills.
			_, farm, nodeUser, node := g.farmWithNode(t, "full", 0)
			tenant := g.user(t)
			contract, err := tenant.c.CreateNodeContract(ctx, node.ID, "aa01", "meta", 0)
			if err != nil {
				t.Fatal(err)
			}
			reader := NewClient(nc, identity.Key{})
			snapshot := func() []any {
				t.Helper()
				tw, err1 := reader.Twin(ctx, tenant.twin.ID)
				f, err2 := reader.Farm(ctx, farm.ID)
				n, err3 := reader.Node(ctx, node.ID)
				c, err4 := reader.Contract(ctx, contract.ID)
				twins, err5 := reader.Twins(ctx)
				cs, err6 := reader.Contracts(ctx, ContractFilter{})
				if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
					t.Fatalf("reads: %v", err)
				}
				return []any{tw, f, n, c, twins, cs}
			}
			before := snapshot()

			filler := testutil.FillFS(t, dir, tt.leave)
			k, err := identity.Generate()
			if err != nil {
				t.Fatal(err)
			}
			newcomer := NewClient(nc, k)
			var ackedWhileFull []Twin // the writes that still fitted in
			if tt.reserve == natsd.NoReserve {
				// Small writes fit in the last pages for a while.
				for i := 0; ; i++ {
					k, err := identity.Generate()
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					tw, err := NewClient(nc, k).CreateTwin(ctx, "")
					cancel()
					if err != nil {
						t.Logf("twin create %d on a full file system without a reserve: %v", i, err)
						break
					}
					if i == 1000 {
						t.Fatal("1000 twins created on a full file system")
					}
					ackedWhileFull = append(ackedWhileFull, tw)
				}
				testutil.Eventually(t, 5*time.Second, "the store to report the failed write", func() (bool, error) {
					err := srv.CheckStore()
					return err != nil && strings.Contains(err.Error(), "recovering from a failed write"), err
				})
			}
			writes := []struct {
				what string
				do   func(context.Context) error
			}{
				{"twin create", func(ctx context.Context) error { _, err := newcomer.CreateTwin(ctx, ""); return err }},
				{"contract create", func(ctx context.Context) error {
					_, err := tenant.c.CreateNodeContract(ctx, node.ID, "aa02", "", 0)
					return err
				}},
				{"contract update", func(ctx context.Context) error {
					_, err := tenant.c.UpdateNodeContract(ctx, contract.ID, "aa03", "")
					return err
				}},
				{"node uptime", func(ctx context.Context) error { return nodeUser.c.ReportUptime(ctx, node.ID, 60) }},
			}
			for _, w := range writes {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				err := w.do(ctx)
				took := time.Since(start)
				cancel()
				if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "grid store full: ") ||
					!strings.Contains(err.Error(), "MiB free") {
					t.Fatalf("%s on a full store: got %v, want grid store full: N MiB free ...", w.what, err)
				}
				if took > 2*time.Second {
					t.Errorf("%s on a full store: answered after %s, want at once", w.what, took)
				}
				t.Logf("%s: %v (%s)", w.what, err, took.Round(time.Millisecond))
			}
			same := func(when string) {
				t.Helper()
				got := snapshot()
				if !reflect.DeepEqual(got[:4], before[:4]) {
					t.Fatalf("reads %s: got %+v, want %+v", when, got[:4], before[:4])
				}
				// The lists hold what they held, maybe more (twins
				// acknowledged later).
				if twins, want := got[4].([]Twin), before[4].([]Twin); len(twins) < len(want) || !reflect.DeepEqual(twins[:len(want)], want) {
					t.Fatalf("twin list %s: got %+v, want it to start with %+v", when, twins, want)
				}
				if cs, want := got[5].([]Contract), before[5].([]Contract); len(cs) < len(want) || !reflect.DeepEqual(cs[:len(want)], want) {
					t.Fatalf("contract list %s: got %+v, want it to start with %+v", when, cs, want)
				}
			}
			same("while full")

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			testutil.Eventually(t, 15*time.Second, "writes to work again", func() (bool, error) {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := newcomer.CreateTwin(ctx, "")
				return err == nil, err
			})
			t.Logf("writes work again %s after the filler went", time.Since(start).Round(time.Millisecond))
			testutil.Eventually(t, 5*time.Second, "the new twin's key known to the relay", func() (bool, error) {
				_, ok := svc.LookupTwin(k.Public())
				return ok, nil
			})
			same("after recovery")
			for _, want := range ackedWhileFull {
				if got, err := reader.Twin(ctx, want.ID); err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("twin %d acknowledged while full, after recovery: got %+v, %v, want %+v", want.ID, got, err, want)
				}
			}
			for _, w := range writes[1:] {
				if err := w.do(ctx); err != nil {
					t.Errorf("%s after recovery: %v", w.what, err)
				}
			}
		})
	}
}
