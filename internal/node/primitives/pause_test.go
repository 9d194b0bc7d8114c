package primitives

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/testutil"
)

// TestZDBPauseResume (root): the namespace of a contract in its grace
// period refuses writes through the 0-db server and serves its data;
// resumed, it takes writes again with nothing lost.
func TestZDBPauseResume(t *testing.T) {
	const mib = 1 << 20
	st := startStorage(t, storage.HostedDisk{Type: storage.SSD, Size: 1 << 30}, storage.HostedDisk{Type: storage.HDD, Size: 256 * mib})
	log := testutil.Logger(t)
	srv := zdb.NewServer(zdb.ServerConfig{}, log)
	m, err := NewZDBManager(ZDBConfig{Port: 9900}, st, srv, func() []string { return []string{"127.0.0.1"} }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Go(t, "serving zdb", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	ctx := context.Background()
	wl := workload(1, "db", gridtypes.ZDBType, gridtypes.ZDB{Size: mib, Mode: "user", Password: "pw"})
	if _, err := m.Provision(ctx, wl); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	expect := func(want string, args ...string) {
		t.Helper()
		req := make([][]byte, len(args))
		for i, a := range args {
			req[i] = []byte(a)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(resp.AppendRequest(nil, req...)); err != nil {
			t.Fatal(err)
		}
		r, err := resp.ReadReply(br, resp.DefaultLimits)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if got := r.String(); got != want {
			t.Fatalf("%q: got %s, want %s", args, got, want)
		}
	}
	expect("+OK", "SELECT", string(wl.ID), "pw")
	expect(`"k"`, "SET", "k", "kept")

	for range 2 { // idempotent
		if err := m.Pause(ctx, wl); err != nil {
			t.Fatal(err)
		}
	}
	expect("-Namespace is paused: its contract is in its grace period, writes resume when it is paid", "SET", "k", "lost")
	expect(`"kept"`, "GET", "k")

	if err := m.Resume(ctx, wl); err != nil {
		t.Fatal(err)
	}
	expect(`"kept"`, "GET", "k")
	expect(`"k"`, "SET", "k", "new")
	expect(`"new"`, "GET", "k")
}
