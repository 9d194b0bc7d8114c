package provision

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

// counting is a manager that counts the Provision calls running at once.
type counting struct {
	cur, max atomic.Int32
}

func (c *counting) Provision(context.Context, *Workload) (any, error) {
	n := c.cur.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	for range 50 { // stay a while, so that overlaps show
		runtime.Gosched()
	}
	c.cur.Add(-1)
	return map[string]string{"ok": "yes"}, nil
}

func (c *counting) Deprovision(context.Context, *Workload) error { return nil }

// TestWorkersBoundProvisioning: a job gives its worker back while its
// results commit, yet no more than Config.Workers (2 in the fixture) jobs
// provision at once, and every deployment settles.
func TestWorkersBoundProvisioning(t *testing.T) {
	c := &counting{}
	f := newFixtureOf(t, defaultRes, map[gridtypes.WorkloadType]Manager{gridtypes.ZDBType: c})
	const n = 12
	for i := uint64(1); i <= n; i++ {
		d := mkdep(i, fmt.Sprintf(`a%d:zdb:{"size":1,"mode":"user"}`, i), fmt.Sprintf(`b%d:zdb:{"size":1,"mode":"user"}`, i),
			fmt.Sprintf(`c%d:zdb:{"size":1,"mode":"user"}`, i))
		if err := f.eng.Provision(d); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(1); i <= n; i++ {
		if got, want := states(f.wait(1, i)), fmt.Sprintf("a%d=ok b%d=ok c%d=ok", i, i, i); got != want {
			t.Errorf("deployment %d: got %s, want %s", i, got, want)
		}
	}
	if m := c.max.Load(); m > 2 || m < 1 {
		t.Errorf("got %d Provision calls at once, want 1 or 2 (Workers 2)", m)
	}
	if got := len(f.eng.workers); got != 0 {
		t.Errorf("got %d worker tokens held after every job ended, want 0", got)
	}
}
