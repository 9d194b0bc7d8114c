package flistd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/testutil"
)

// secretBody is what the node's own services answer; it must never reach
// a tenant.
const secretBody = "NODE-SECRET admin token 4f1c"

// secretServer stands for a service of the node on loopback: it counts
// requests and answers secretBody with status.
func secretServer(t *testing.T, status int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
		w.Write([]byte(secretBody))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// listenOn listens on addr:0 (127.0.0.2 stands for an allowed host in
// these tests, 127.0.0.1 for the node's own services).
func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// onlyHub allows 127.0.0.2 alone: a hub there is an allowed host, the rest
// of loopback is the node's.
var onlyHub = &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "NODE-SECRET") {
		t.Errorf("the error carries the remote body: %v", err)
	}
}

// assertNothingKept checks that a refused flist left no download behind.
func assertNothingKept(t *testing.T, m *Module) {
	t.Helper()
	for _, d := range []string{dirFlists, dirURLs} {
		ents, _ := os.ReadDir(filepath.Join(m.cfg.Root, d))
		if len(ents) != 0 {
			t.Errorf("%s holds %d entries after a refused flist", d, len(ents))
		}
	}
}

// TestFetchRefusesNodeAddresses: a deployment's flist at the node's
// loopback, link-local (cloud metadata), unspecified, own or private
// address is refused before any connection; nothing is fetched and the
// answer of the node's service never reaches the error.
func TestFetchRefusesNodeAddresses(t *testing.T) {
	srv, hits := secretServer(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	own := netip.MustParseAddr("203.0.114.7")
	policy := &egress.Policy{Own: func() []netip.Addr { return []netip.Addr{own} }}
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", Egress: policy, DownloadTimeout: 2 * time.Second})
	for _, url := range []string{
		srv.URL + "/admin",
		"http://localhost:" + port + "/admin",
		"http://LocalHost.:" + port + "/admin",
		"http://127.9.9.9:" + port + "/admin",
		"http://[::1]:" + port + "/admin",
		"http://[::ffff:127.0.0.1]:" + port + "/admin",
		"http://0.0.0.0:" + port + "/admin",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/x.fl",
		"http://10.0.0.1/farm.fl",
		"http://192.168.1.1/router.fl",
		"http://[fd00::1]/x.fl",
		"http://203.0.114.7/own.fl",
		"http://[64:ff9b::7f00:1]:" + port + "/admin", // NAT64 of 127.0.0.1
	} {
		t.Run(url, func(t *testing.T) {
			_, err := m.fetch(context.Background(), url)
			if !errors.Is(err, egress.ErrDenied) {
				t.Fatalf("got %v, want egress.ErrDenied", err)
			}
			if !strings.Contains(err.Error(), url) {
				t.Errorf("error %q does not name the URL", err)
			}
			assertNoSecret(t, err)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the node's service was asked %d times", n)
	}
	// MountRO and Inspect refuse the same way.
	if _, _, err := m.MountRO(context.Background(), srv.URL+"/admin"); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("MountRO: got %v, want egress.ErrDenied", err)
	}
	if _, err := m.Inspect(context.Background(), srv.URL+"/admin"); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("Inspect: got %v, want egress.ErrDenied", err)
	}
	assertNothingKept(t, m)
}

// TestFetchRefusesPaths: a flist that names a file of the node's disk is
// refused without reading it, even when it is a valid flist.
func TestFetchRefusesPaths(t *testing.T) {
	h := newHub(t)
	local := filepath.Join(t.TempDir(), "valid.fl")
	if err := os.WriteFile(local, h.file(strings.TrimPrefix(h.build(t, "app.fl", rootfs), h.URL+"/repo/")), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent"})
	for _, src := range []string{local, "/etc/shadow", "file://" + local, "dir://" + filepath.Dir(local), "../../etc/passwd"} {
		if _, err := m.fetch(context.Background(), src); err == nil || !strings.Contains(err.Error(), "want an http(s) URL") {
			t.Errorf("fetch(%q) = %v, want it refused", src, err)
		}
	}
	assertNothingKept(t, m)
}

// TestFetchStatusOnly: a hub's refusal is reported by its status code, and
// an answer that is not HTTP at all by a generic error: neither quotes
// what the server sent.
func TestFetchStatusOnly(t *testing.T) {
	srv, _ := secretServer(t, http.StatusForbidden)
	// A non-HTTP service (an SSH banner, a database greeting).
	ln := listenOn(t, "127.0.0.1")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-NODE-SECRET banner\r\n\r\n"))
			c.Close()
		}
	}()
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", DownloadTimeout: 5 * time.Second})
	_, err := m.fetch(context.Background(), srv.URL+"/admin")
	if err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Errorf("got %v, want status 403", err)
	}
	assertNoSecret(t, err)
	_, err = m.fetch(context.Background(), "http://"+ln.Addr().String()+"/x.fl")
	if err == nil {
		t.Fatal("fetch from a non-HTTP service succeeded")
	}
	assertNoSecret(t, err)
}

// TestFetchRedirect: an allowed host that redirects to the node's
// loopback, to localhost or to a file is refused at the redirect; the
// node's service is never asked.
func TestFetchRedirect(t *testing.T) {
	srv, hits := secretServer(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ln := listenOn(t, "127.0.0.2")
	redir := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := map[string]string{
			"/loopback.fl":  srv.URL + "/admin",
			"/localhost.fl": "http://localhost:" + port + "/admin",
			"/file.fl":      "file:///etc/shadow",
			"/loop.fl":      "/loop.fl",
		}[r.URL.Path]
		http.Redirect(w, r, target, http.StatusFound)
	}), ReadHeaderTimeout: time.Second}
	go redir.Serve(ln)
	t.Cleanup(func() { redir.Close() })
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", Egress: onlyHub, DownloadTimeout: 5 * time.Second})
	for _, name := range []string{"loopback.fl", "localhost.fl", "file.fl", "loop.fl"} {
		t.Run(name, func(t *testing.T) {
			_, err := m.fetch(context.Background(), "http://"+ln.Addr().String()+"/"+name)
			if !errors.Is(err, egress.ErrDenied) {
				t.Fatalf("got %v, want the redirect refused", err)
			}
			assertNoSecret(t, err)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the node's service was asked %d times", n)
	}
	assertNothingKept(t, m)
}

// innerStoreFlist publishes, on a hub at 127.0.0.2 (allowed), a flist
// whose blocks are said to be at store.
func innerStoreFlist(t *testing.T, store string) (*hub, string) {
	t.Helper()
	h := newHubOn(t, listenOn(t, "127.0.0.2"))
	meta := buildMeta(t, tree{"bin/sh": "sh", ".startup.toml": "[startup.entry.args]\nname = \"/bin/app\"\n"}, routedStore{h.blocks, store})
	return h, h.put(t, "inner.fl", writeMeta(t, meta))
}

// TestInnerStoreRefused: a flist downloaded from an allowed hub whose
// routes name a store at the node's loopback (http or zdb), at a loopback
// name, or on the node's disk (dir://) is refused: by the download, by
// Inspect (which reads its blocks in the node process), and by the FUSE
// daemon (which reads them in its own process).
func TestInnerStoreRefused(t *testing.T) {
	// The node's own block server, on 127.0.0.1: it holds the blocks, so
	// the flist would work if it were reached.
	own, hits := secretServer(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(own.Listener.Addr().String())
	for _, store := range []string{
		own.URL,
		"http://localhost:" + port,
		"https://[::1]:" + port,
		"zdb://127.0.0.1:9900/ns",
		"zdb://pw@[::1]:9900/ns",
		"dir://" + t.TempDir(),
		"http://169.254.169.254",
	} {
		t.Run(store, func(t *testing.T) {
			_, url := innerStoreFlist(t, store)
			m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", Egress: onlyHub})
			_, err := m.fetch(context.Background(), url)
			if !errors.Is(err, egress.ErrDenied) {
				t.Fatalf("fetch: got %v, want egress.ErrDenied", err)
			}
			assertNoSecret(t, err)
			if _, err := m.Inspect(context.Background(), url); !errors.Is(err, egress.ErrDenied) {
				t.Fatalf("Inspect: got %v, want egress.ErrDenied", err)
			}
			assertNothingKept(t, m)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the node's block server was asked %d times", n)
	}
}

// TestInspectKeptFlist: a flist kept from an earlier download under a
// looser policy is still refused when its blocks are to be read: Inspect
// opens the stores through the policy every time.
func TestInspectKeptFlist(t *testing.T) {
	own, hits := secretServer(t, http.StatusOK)
	_, url := innerStoreFlist(t, own.URL)
	root := filepath.Join(t.TempDir(), "flist")
	loose := newModule(t, root, Config{Binary: "/nonexistent", Egress: &egress.Policy{Allow: loopback}})
	if _, err := loose.fetch(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	strict := newModule(t, root, Config{Binary: "/nonexistent", Egress: onlyHub})
	if _, err := strict.Inspect(context.Background(), url); !errors.Is(err, egress.ErrDenied) {
		t.Fatalf("Inspect of a kept flist: got %v, want egress.ErrDenied", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the node's block server was asked %d times", n)
	}
}

// TestServeRefusesStore: the FUSE daemon (zos flist mount) opens a
// flist's stores through the node's policy too: a store at loopback, not
// in its --egress-allow, ends it before anything is mounted.
func TestServeRefusesStore(t *testing.T) {
	own, hits := secretServer(t, http.StatusOK)
	meta := buildMeta(t, rootfs, routedStore{mustDirStore(t), own.URL})
	fl := filepath.Join(t.TempDir(), "x.fl")
	if err := os.WriteFile(fl, writeMeta(t, meta), 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	err := Serve(context.Background(), DaemonConfig{Meta: fl, CacheDir: t.TempDir(), CacheSize: 1 << 20, Mountpoint: mnt,
		EgressAllow: onlyHub.Allow}, testutil.Logger(t))
	if !errors.Is(err, egress.ErrDenied) {
		t.Fatalf("got %v, want egress.ErrDenied", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the node's block server was asked %d times", n)
	}
	// The module passes its allowed prefixes to the daemons it starts.
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", Egress: onlyHub})
	if got, want := strings.Join(m.egressArgs(), " "), "--egress-allow 127.0.0.2/32"; got != want {
		t.Errorf("daemon args %q, want %q", got, want)
	}
}

func mustDirStore(t *testing.T) *flist.DirStore {
	t.Helper()
	s, err := flist.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
