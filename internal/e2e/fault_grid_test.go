package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// TestFaultGridStoreFull runs a real zgrid whose data directory is a
// 16 MiB tmpfs and fills that file system with a filler file, in turn to
// the last byte and to under the store's reserve. While it is full, every
// write through zosctl (twin create, farm create, name reserve, in
// parallel) fails at once with "grid store full: N MiB free, reserve M
// MiB", reads (twin show, farm list, contract show and list, node list)
// answer as before, zgrid logs store_low and the explorer's /stats shows
// the store not writable. With the filler removed, writes work again
// within a bounded wait, without a restart, and every twin, farm and
// contract acknowledged before is still there, the same.
func TestFaultGridStoreFull(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.MountTmpfs(t, "16m")
	g := startGridIn(t, dir)
	owner := newUser(t, g)

	// acked holds the --json output of every read of what was
	// acknowledged, by the zosctl arguments that read it.
	acked := map[string]string{}
	record := func(args ...string) {
		acked[strings.Join(args, " ")] = owner.mustRun(append(args, "--json")...)
	}
	checkAcked := func(when string) {
		t.Helper()
		for args, want := range acked {
			if got := owner.mustRun(append(strings.Fields(args), "--json")...); got != want {
				t.Fatalf("zosctl %s %s: got %s, want %s", args, when, got, want)
			}
		}
	}
	var twin struct {
		ID uint32 `json:"id"`
	}
	owner.json(&twin, "twin", "show")

	for round := range faultRounds(t) {
		// What the grid acknowledges before it fills.
		var farm struct {
			ID uint32 `json:"id"`
		}
		owner.json(&farm, "farm", "create", fmt.Sprintf("full%d", round))
		var name struct {
			ID uint64 `json:"contract_id"`
		}
		owner.json(&name, "name", "reserve", fmt.Sprintf("full%d", round))
		record("twin", "show", strconv.Itoa(int(twin.ID)))
		record("contract", "show", strconv.FormatUint(name.ID, 10))
		farms := owner.mustRun("farm", "list", "--json")

		leave := int64(0) // to the last byte
		if round%2 == 1 {
			leave = 128 << 10 // under the reserve (0.8 MiB here)
		}
		filler := testutil.FillFS(t, dir, leave)
		t.Cleanup(func() { os.Remove(filler) })

		// Writes, in parallel, each from its own zosctl.
		writes := [][]string{
			{"twin", "create"},
			{"farm", "create", fmt.Sprintf("refused%d", round)},
			{"name", "reserve", fmt.Sprintf("refused%d", round)},
			{"farm", "create", fmt.Sprintf("refused%db", round)},
		}
		newcomer := &user{t: t, home: t.TempDir(), grid: g}
		newcomer.mustRun("key", "new")
		var wg sync.WaitGroup
		errs := make([]string, len(writes))
		took := make([]time.Duration, len(writes))
		for i, args := range writes {
			u := owner
			if args[0] == "twin" {
				u = newcomer
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				_, stderr, code := u.run(args...)
				took[i] = time.Since(start)
				if code == 0 {
					stderr = "exit 0"
				}
				errs[i] = strings.TrimSpace(stderr)
			}()
		}
		wg.Wait()
		for i, args := range writes {
			if !strings.Contains(errs[i], "grid store full: ") || !strings.Contains(errs[i], "MiB free, reserve") {
				t.Fatalf("round %d: zosctl %s on a full store: got %q, want grid store full: N MiB free, reserve M MiB",
					round, strings.Join(args, " "), errs[i])
			}
			if took[i] > 3*time.Second {
				t.Errorf("round %d: zosctl %s on a full store: answered after %s, want at once", round, strings.Join(args, " "), took[i])
			}
		}
		t.Logf("round %d (leave %d bytes): zosctl %s: %s (%s)", round, leave, strings.Join(writes[0], " "), errs[0], took[0].Round(time.Millisecond))

		// Reads go on.
		checkAcked("while full")
		if got := owner.mustRun("farm", "list", "--json"); got != farms {
			t.Fatalf("round %d: farm list while full: got %s, want %s", round, got, farms)
		}
		owner.mustRun("contract", "list", "--all")
		owner.mustRun("node", "list")
		if st := storeStatus(t, g); st.Writable || !strings.Contains(st.Reason, "MiB free") {
			t.Fatalf("round %d: explorer /stats store while full: got %+v, want not writable with the free space", round, st)
		}
		testutil.Eventually(t, 10*time.Second, "zgrid to log store_low", func() (bool, error) {
			return strings.Count(g.proc.output(), "msg=store_low") == round+1, nil
		})

		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		testutil.Eventually(t, 30*time.Second, "writes to work again with the filler gone", func() (bool, error) {
			if _, stderr, code := newcomer.run("twin", "create"); code != 0 {
				return false, fmt.Errorf("%s", strings.TrimSpace(stderr))
			}
			return true, nil
		})
		t.Logf("round %d: writes work again %s after the filler went", round, time.Since(start).Round(time.Millisecond))
		owner.mustRun("farm", "create", fmt.Sprintf("after%d", round))
		owner.mustRun("name", "reserve", fmt.Sprintf("after%d", round))
		testutil.Eventually(t, 10*time.Second, "zgrid to log store_ok", func() (bool, error) {
			return strings.Count(g.proc.output(), "msg=store_ok") == round+1, nil
		})
		if st := storeStatus(t, g); !st.Writable {
			t.Fatalf("round %d: explorer /stats store after recovery: got %+v, want writable", round, st)
		}
		checkAcked("after recovery")
	}
	if strings.Contains(g.proc.output(), "no space left on device") {
		t.Logf("JetStream met the full disk (zgrid recovered it): %s", g.proc.output())
	}
}

// storeStatus is the store's state on the explorer's /stats.
func storeStatus(t *testing.T, g *grid) (st struct {
	Writable bool   `json:"writable"`
	Reason   string `json:"reason"`
}) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", g.httpPort))
	if err != nil {
		t.Fatalf("explorer /stats: %v", err)
	}
	defer resp.Body.Close()
	var stats struct {
		Store *struct {
			Writable bool   `json:"writable"`
			Reason   string `json:"reason"`
		} `json:"store"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil || stats.Store == nil {
		t.Fatalf("explorer /stats: %s: got store %+v, %v", resp.Status, stats.Store, err)
	}
	st.Writable, st.Reason = stats.Store.Writable, stats.Store.Reason
	return st
}

// TestFaultGridStoreFullWithoutReserve runs zgrid with --store-reserve 0
// so that JetStream itself meets the full disk: its file stores keep the
// write error and it acknowledges no write until restarted. zgrid notices
// (writes are then refused at once, "recovering from a failed write"),
// reads go on, and once the filler is gone zgrid restarts JetStream in
// its own process (with the grid's accounts): writes work again, twins
// created before and after authenticate, nothing acknowledged is lost.
func TestFaultGridStoreFullWithoutReserve(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.MountTmpfs(t, "16m")
	g := startGridIn(t, dir, "--store-reserve", "0")
	owner := newUser(t, g)
	filler := testutil.FillFS(t, dir, 0)
	t.Cleanup(func() { os.Remove(filler) })

	// Small writes fit in the last pages for a while: create twins until
	// one fails, keeping what was acknowledged.
	var ackedTwins []*user
	var failed string
	for i := 0; failed == ""; i++ {
		if i == 200 {
			t.Fatal("200 twins created on a full file system")
		}
		u := &user{t: t, home: t.TempDir(), grid: g}
		u.mustRun("key", "new")
		start := time.Now()
		if _, stderr, code := u.run("twin", "create"); code != 0 {
			failed = fmt.Sprintf("%s (%s)", strings.TrimSpace(stderr), time.Since(start).Round(time.Millisecond))
			break
		}
		ackedTwins = append(ackedTwins, u)
	}
	t.Logf("%d twins acknowledged on the full file system, then: %s", len(ackedTwins), failed)
	shows := map[*user]string{}
	for _, u := range append(ackedTwins, owner) {
		shows[u] = u.mustRun("twin", "show", "--json")
	}
	testutil.Eventually(t, 15*time.Second, "writes refused at once, saying the store recovers", func() (bool, error) {
		start := time.Now()
		_, stderr, code := owner.run("farm", "create", "refused")
		if code == 0 {
			return false, fmt.Errorf("farm create on a full store: exit 0")
		}
		if took := time.Since(start); took > 3*time.Second {
			return false, fmt.Errorf("farm create on a full store answered after %s: %s", took, stderr)
		}
		return strings.Contains(stderr, "grid store full: recovering from a failed write"), fmt.Errorf("%s", strings.TrimSpace(stderr))
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 30*time.Second, "writes to work again with the filler gone", func() (bool, error) {
		if _, stderr, code := owner.run("farm", "create", "after"); code != 0 {
			return false, fmt.Errorf("%s", strings.TrimSpace(stderr))
		}
		return true, nil
	})
	t.Logf("writes work again %s after the filler went", time.Since(start).Round(time.Millisecond))
	if !g.proc.logged("msg=jetstream_restarted") {
		t.Errorf("zgrid logged no jetstream_restarted")
	}
	for u, want := range shows {
		if got := u.mustRun("twin", "show", "--json"); got != want {
			t.Fatalf("twin show after recovery: got %s, want %s", got, want)
		}
	}
	// A twin created after the restart is known to the relay: its own
	// connection may write.
	late := newUser(t, g)
	late.mustRun("farm", "create", "late")
}
