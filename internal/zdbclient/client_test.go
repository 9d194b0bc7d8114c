package zdbclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
)

// serve runs our 0-db server over a store in dir on addr ("127.0.0.1:0"
// for a new port) with a namespace "ns" (password "pw"); stop ends it.
func serve(t *testing.T, dir, addr string) (string, func()) {
	t.Helper()
	st, err := zdb.Open(zdb.Config{DataDir: filepath.Join(dir, "data"), IndexDir: filepath.Join(dir, "index")}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Namespace("ns"); err != nil {
		if err := st.NamespaceCreate("ns", zdb.NamespaceOptions{Password: "pw", Mode: "user"}); err != nil {
			t.Fatal(err)
		}
	}
	var ln net.Listener
	if err := testutil.Poll(10*time.Second, func() (bool, error) {
		ln, err = net.Listen("tcp", addr)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	srv := zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(t), st)
	stop := testutil.Go(t, "zdb", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	done := false
	halt := func() {
		if !done {
			done = true
			stop()
			st.Close()
		}
	}
	t.Cleanup(halt)
	return ln.Addr().String(), halt
}

// TestClientCommands: SET, GET, EXISTS, DEL and SCAN on a password
// namespace of a real 0-db; a missing key is ErrNotFound; deleting it
// again is no error.
func TestClientCommands(t *testing.T) {
	addr, _ := serve(t, t.TempDir(), "127.0.0.1:0")
	c := New(Options{Network: "tcp", Addr: addr, Namespace: "ns", Password: "pw"})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 40 { // more than one SCAN page (32)
		k := fmt.Sprintf("key-%02d", i)
		want = append(want, k)
		if err := c.Set(ctx, []byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	v, err := c.Get(ctx, []byte("key-07"))
	if err != nil || string(v) != "vkey-07" {
		t.Errorf("Get: got %q, %v, want vkey-07", v, err)
	}
	if ok, err := c.Exists(ctx, []byte("key-07")); !ok || err != nil {
		t.Errorf("Exists: got %v, %v, want true", ok, err)
	}
	if err := c.Del(ctx, []byte("key-07")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, []byte("key-07")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get deleted: got %v, want ErrNotFound", err)
	}
	if err := c.Del(ctx, []byte("key-07")); err != nil {
		t.Errorf("Del absent: got %v, want nil", err)
	}
	var got []string
	var cursor []byte
	for {
		keys, next, done, err := c.Scan(ctx, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		for _, k := range keys {
			got = append(got, string(k))
		}
		cursor = next
	}
	want = slices.DeleteFunc(want, func(k string) bool { return k == "key-07" })
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Errorf("Scan: got %d keys %q, want %d", len(got), got, len(want))
	}
}

// TestClientWrongPassword: a refused SELECT is an error naming the step.
func TestClientWrongPassword(t *testing.T) {
	addr, _ := serve(t, t.TempDir(), "127.0.0.1:0")
	c := New(Options{Network: "tcp", Addr: addr, Namespace: "ns", Password: "nope"})
	defer c.Close()
	err := c.Set(context.Background(), []byte("k"), []byte("v"))
	var serr *ServerError
	if !errors.As(err, &serr) || !strings.Contains(err.Error(), "selecting namespace") {
		t.Errorf("got %v, want a server error while selecting the namespace", err)
	}
}

// TestClientReconnects: after the server restarts on the same port, the
// next call works on a new connection (the pooled one is stale).
func TestClientReconnects(t *testing.T) {
	dir := t.TempDir()
	addr, stop := serve(t, dir, "127.0.0.1:0")
	c := New(Options{Network: "tcp", Addr: addr, Namespace: "ns", Password: "pw"})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := c.Get(ctx, []byte("k")); err == nil {
		t.Fatal("Get with the server down: got nil, want an error")
	}
	serve(t, dir, addr)
	if v, err := c.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Errorf("Get after restart: got %q, %v, want v", v, err)
	}
}

// TestClientDeadline: a server that accepts and never answers costs one
// Timeout, not a hang.
func TestClientDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})
	c := New(Options{Network: "tcp", Addr: ln.Addr().String(), Timeout: 300 * time.Millisecond})
	defer c.Close()
	start := time.Now()
	_, err = c.Get(context.Background(), []byte("k"))
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Errorf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, want about the 300ms timeout", d)
	}
}

// TestClientQuiet: a quiet client keeps what the server said out of its
// errors, and still reads the replies it acts on: SCAN of an empty
// namespace ends (0-db's end is an error reply), DEL of an absent key is
// no error.
func TestClientQuiet(t *testing.T) {
	addr, _ := serve(t, t.TempDir(), "127.0.0.1:0")
	c := New(Options{Network: "tcp", Addr: addr, Namespace: "ns", Password: "pw", Quiet: true})
	defer c.Close()
	ctx := context.Background()
	if _, _, done, err := c.Scan(ctx, nil); err != nil || !done {
		t.Errorf("Scan of an empty namespace: got done %v, %v; want done, nil", done, err)
	}
	if err := c.Del(ctx, []byte("absent")); err != nil {
		t.Errorf("Del absent: got %v, want nil", err)
	}
	_, err := c.Do(ctx, []byte("NOSUCHCOMMAND"))
	var serr *ServerError
	if !errors.As(err, &serr) || !strings.HasSuffix(err.Error(), ": zdb: the server answered an error") || serr.Msg == "" {
		t.Errorf("an error reply: got %v, want the server's words left out", err)
	}
}
