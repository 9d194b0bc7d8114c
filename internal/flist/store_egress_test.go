package flist

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
)

// nodeSecret is what a service of the node answers; it must never reach
// an error a tenant reads.
const nodeSecret = "NODE-SECRET 4f1c"

// TestGuardedStoreRefuses: the stores a tenant's flist names are opened
// only at addresses the policy allows, and never on the node's disk.
func TestGuardedStoreRefuses(t *testing.T) {
	p := &egress.Policy{}
	for _, u := range []string{
		"dir:///var/cache/zos",
		"dir://relative",
		"http://127.0.0.1:9000",
		"http://localhost:9000",
		"https://[::1]",
		"http://[::ffff:127.0.0.1]",
		"http://169.254.169.254",
		"http://10.1.2.3:8080",
		"http://user:pw@hub.example",
		"zdb://127.0.0.1:9900/ns",
		"zdb://pw@[::1]/ns",
		"zdb://localhost:9900/ns",
		"zdb://192.168.1.10:9900/ns",
		"ftp://hub.example",
		"unix:///run/zos.sock",
		"zdb:///run/zdb.sock", // a node's local 0-db socket
	} {
		if s, err := OpenStore(u, StoreOptions{Egress: p}); !errors.Is(err, egress.ErrDenied) {
			if s != nil {
				s.Close()
			}
			t.Errorf("OpenStore(%q) = %v, want egress.ErrDenied", u, err)
		}
	}
	// One refused route refuses the router.
	if _, err := NewRouter([]Route{{0, 0x7f, "https://hub.example"}, {0x80, 0xff, "dir:///etc"}}, StoreOptions{Egress: p}); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("NewRouter with a dir route = %v, want egress.ErrDenied", err)
	}
	// Public stores open (they dial on use).
	for _, u := range []string{"https://hub.grid.tf", "http://8.8.8.8:8080", "zdb://pw@8.8.8.8:9900/ns", "zdb://zdb.example/ns"} {
		s, err := OpenStore(u, StoreOptions{Egress: p})
		if err != nil {
			t.Errorf("OpenStore(%q) = %v, want it opened", u, err)
			continue
		}
		s.Close()
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestGuardedHTTPStore: a hub the policy allows (127.0.0.2 here) serves
// blocks; its refusals are reported by status code only, a block over the
// bound is cut, and a redirect to the node's loopback is refused.
func TestGuardedHTTPStore(t *testing.T) {
	var secretHits atomic.Int64
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		secretHits.Add(1)
		w.Write([]byte(nodeSecret))
	}))
	t.Cleanup(secret.Close)

	ref, data, err := SealBlock([]byte("block content"))
	if err != nil {
		t.Fatal(err)
	}
	id := func(b byte) [HashSize]byte { var k [HashSize]byte; k[0] = b; return k }
	good, secretID, bigID, redirID, missing := ref.ID, id(1), id(2), id(3), id(4)
	hub := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/api/v1/blocks/") {
		case hex.EncodeToString(good[:]):
			w.Write(data)
		case hex.EncodeToString(secretID[:]):
			http.Error(w, nodeSecret, http.StatusInternalServerError)
		case hex.EncodeToString(bigID[:]):
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for { // for ever: the store must stop reading
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case hex.EncodeToString(redirID[:]):
			http.Redirect(w, r, secret.URL+"/admin", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}), ReadHeaderTimeout: time.Second}
	ln := listen(t, "127.0.0.2:0")
	go hub.Serve(ln)
	t.Cleanup(func() { hub.Close() })

	p := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	s, err := OpenStore("http://"+ln.Addr().String(), StoreOptions{Egress: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if got, err := s.Get(ctx, good); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get(good) = %d bytes, %v", len(got), err)
	}
	if ok, err := s.Has(ctx, good); !ok || err != nil {
		t.Errorf("Has(good) = %v, %v", ok, err)
	}
	if ok, err := s.Has(ctx, missing); ok || err != nil {
		t.Errorf("Has(missing) = %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	_, err = s.Get(ctx, secretID)
	if err == nil || !strings.Contains(err.Error(), "status 500") || strings.Contains(err.Error(), "NODE-SECRET") {
		t.Errorf("Get of a refused block = %v, want status 500 and no remote text", err)
	}
	before := totalAlloc()
	if _, err := s.Get(ctx, bigID); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("Get of an endless block = %v, want it cut", err)
	}
	if got := totalAlloc() - before; got > 8*maxStoredBlock {
		t.Errorf("an endless block allocated %d MiB", got>>20)
	}
	if _, err := s.Get(ctx, redirID); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("Get through a redirect to loopback = %v, want egress.ErrDenied", err)
	}
	if err := s.Set(ctx, good, data); err == nil {
		t.Error("Set on a tenant's store succeeded")
	}
	if n := secretHits.Load(); n != 0 {
		t.Errorf("the node's service was asked %d times", n)
	}
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// hostileZDB serves every connection with serve on 127.0.0.2.
func hostileZDB(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln := listen(t, "127.0.0.2:0")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go io.Copy(io.Discard, c)
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestGuardedZDBStore: a real 0-db the policy allows serves blocks; a
// hostile one (a tenant's) that answers endless nesting, a huge array of
// huge strings or an error message gets an error without its text, and
// the reader's memory and stack stay bounded.
func TestGuardedZDBStore(t *testing.T) {
	ctx := context.Background()
	z := startZDB(t)
	plain, err := OpenStore(z.url(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ref, data, err := SealBlock([]byte("zdb block"))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Set(ctx, ref.ID, data); err != nil {
		t.Fatal(err)
	}
	p := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.2/32")}}
	s, err := OpenStore(z.url(), StoreOptions{Egress: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Get(ctx, ref.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get from an allowed 0-db = %d bytes, %v", len(got), err)
	}

	// The server's payload is made before any measure.
	const n = 16 << 20
	payload := append(bytes.Repeat([]byte("x"), n), '\r', '\n')
	big := func(c net.Conn) {
		fmt.Fprintf(c, "*64\r\n")
		for i := 0; i < 64; i++ {
			fmt.Fprintf(c, "$%d\r\n", n)
			if _, err := c.Write(payload); err != nil {
				return
			}
		}
	}
	endless := func(c net.Conn) {
		b := bytes.Repeat([]byte("*1\r\n"), 1024)
		for {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name  string
		serve func(net.Conn)
	}{
		{"error text", func(c net.Conn) { c.Write([]byte("-" + nodeSecret + "\r\n")) }},
		{"endless nesting", endless},
		{"huge array", big},
		{"garbage", func(c net.Conn) { c.Write([]byte("SSH-2.0-" + nodeSecret + "\r\n")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := hostileZDB(t, tt.serve)
			s, err := OpenStore("zdb://"+addr, StoreOptions{Egress: p})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			before := totalAlloc()
			_, err = s.Get(ctx, ref.ID)
			if err == nil {
				t.Fatal("Get from a hostile 0-db succeeded")
			}
			if strings.Contains(err.Error(), "NODE-SECRET") {
				t.Errorf("the error carries the server's text: %v", err)
			}
			if got := totalAlloc() - before; got > 48<<20 {
				t.Errorf("allocated %d MiB reading one reply", got>>20)
			}
		})
	}
}

// TestGuardedStoreRFSLayout: a tenant's http route to a plain web server
// over an rfs dir store (URL/ab/ID) reads through the guarded store too;
// a block it lacks is ErrNotFound after the three places were asked.
func TestGuardedStoreRFSLayout(t *testing.T) {
	dir := t.TempDir()
	ref, data, err := SealBlock([]byte("served as a file"))
	if err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(ref.ID[:])
	if err := os.MkdirAll(filepath.Join(dir, h[:2]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, h[:2], h), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}), ReadHeaderTimeout: time.Second}
	ln := listen(t, "127.0.0.2:0")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	s, err := OpenStore("http://"+ln.Addr().String()+"/", StoreOptions{Egress: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if got, err := s.Get(ctx, ref.ID); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get = %d bytes, %v; want the block", len(got), err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("%d requests for a block at URL/ab/ID, want 1", n)
	}
	if ok, err := s.Has(ctx, ref.ID); !ok || err != nil {
		t.Errorf("Has = %v, %v; want true", ok, err)
	}
	asked.Store(0)
	if _, err := s.Get(ctx, [HashSize]byte{9}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("%d requests for a missing block, want 3 (URL/ab/ID, URL/ID, URL/api/v1/blocks/ID)", n)
	}
}
