// Package yggpeer runs, for root tests, the real yggdrasil daemon (the
// `yggdrasil` command of the yggdrasil-go version go.mod pins, built by
// scripts/yggdrasil.sh into .cache/bin) in a network namespace: the public
// planetary peer of the network-lab and e2e tests. Its configuration comes
// from `yggdrasil -genconf -json` with Listen, Peers, IfName and
// AdminListen set (no multicast); its admin socket answers Peers. Only
// tests import it.
package yggpeer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

const module = "github.com/yggdrasil-network/yggdrasil-go"

// Config is what a test chooses of the daemon's configuration.
type Config struct {
	Listen []string // listen URIs for inbound peers (tcp://HOST:PORT)
	Peers  []string // peers to connect to
	IfName string   // its TUN (default ygg0)
}

// Daemon is a running yggdrasil daemon.
type Daemon struct {
	Address netip.Addr   // its overlay address (200::/7)
	Subnet  netip.Prefix // its routed /64 (300::/7)

	ns    string
	admin string // path of the admin unix socket
	cmd   *exec.Cmd
	out   *lockedWriter // its stdout and stderr

	once    sync.Once
	stopErr error
	done    chan error
}

// Binary returns the yggdrasil daemon make deps builds, skipping the test
// (failing it in strict mode) when it is missing or is not of the
// yggdrasil-go version go.mod pins (0.4 and 0.5 do not peer).
func Binary(t testing.TB) string {
	t.Helper()
	root := testutil.ModuleRoot(t)
	want, err := pinnedVersion(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, ".cache", "bin", "yggdrasil")
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		testutil.Skip(t, "needs the yggdrasil daemon at "+bin+" (make deps)")
	}
	if !strings.Contains(string(out), "Build version: "+strings.TrimPrefix(want, "v")+"\n") {
		testutil.Skip(t, fmt.Sprintf("%s is not yggdrasil %s (make deps): %s", bin, want, out))
	}
	return bin
}

// pinnedVersion is the yggdrasil-go version go.mod requires.
func pinnedVersion(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) > 0 && fs[0] == "require" {
			fs = fs[1:]
		}
		if len(fs) >= 2 && fs[0] == module {
			return fs[1], nil
		}
	}
	return "", fmt.Errorf("%s: no %s requirement", gomod, module)
}

// Start runs the daemon in ns until the test ends (or Stop), once its
// admin socket answers with its address. Its log is printed if the test
// fails.
func Start(t testing.TB, ns string, cfg Config) *Daemon {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	d := &Daemon{ns: ns, admin: filepath.Join(dir, "admin.sock"), out: &lockedWriter{}, done: make(chan error, 1)}
	conf, err := genconf(bin, cfg, d.admin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "yggdrasil.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-useconffile", path, "-logto", "stdout")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := netns.Start(ns, d.cmd); err != nil {
		t.Fatalf("yggdrasil in %s: %v", ns, err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("yggdrasil in %s: %v", ns, err)
		}
		if t.Failed() {
			t.Logf("yggdrasil in %s log:\n%s", ns, d.Log())
		}
	})

	var self struct {
		Address string `json:"address"`
		Subnet  string `json:"subnet"`
	}
	if err := testutil.Poll(30*time.Second, func() (bool, error) {
		select {
		case err := <-d.done:
			d.done <- err
			return false, fmt.Errorf("exited: %v", err)
		default:
		}
		return d.call("getself", &self) == nil, nil
	}); err != nil {
		t.Fatalf("yggdrasil in %s never answered on its admin socket: %v\n%s", ns, err, d.Log())
	}
	if d.Address, err = netip.ParseAddr(self.Address); err != nil {
		t.Fatalf("yggdrasil getself address: %v", err)
	}
	if d.Subnet, err = netip.ParsePrefix(self.Subnet); err != nil {
		t.Fatalf("yggdrasil getself subnet: %v", err)
	}
	return d
}

// genconf is a fresh configuration (new key) from `yggdrasil -genconf
// -json` with cfg's listeners, peers and TUN, admin on a unix socket and
// no multicast discovery.
func genconf(bin string, cfg Config, admin string) ([]byte, error) {
	out, err := exec.Command(bin, "-genconf", "-json").Output()
	if err != nil {
		return nil, fmt.Errorf("yggdrasil -genconf: %w", err)
	}
	var conf map[string]any
	if err := json.Unmarshal(out, &conf); err != nil {
		return nil, fmt.Errorf("yggdrasil -genconf output: %w", err)
	}
	if _, ok := conf["PrivateKey"]; !ok {
		return nil, errors.New("yggdrasil -genconf output has no PrivateKey")
	}
	ifname := cfg.IfName
	if ifname == "" {
		ifname = "ygg0"
	}
	conf["Listen"] = nonNil(cfg.Listen)
	conf["Peers"] = nonNil(cfg.Peers)
	conf["IfName"] = ifname
	conf["AdminListen"] = "unix://" + admin
	conf["MulticastInterfaces"] = []any{}
	return json.MarshalIndent(conf, "", "  ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Peer is one of the daemon's peerings (admin getpeers).
type Peer struct {
	URI     string `json:"remote"`
	Up      bool   `json:"up"`
	Inbound bool   `json:"inbound"`
	Address string `json:"address"`
	Key     string `json:"key"`
}

// Peers asks the daemon's admin socket for its peers (nil on error).
func (d *Daemon) Peers() []Peer {
	var r struct {
		Peers []Peer `json:"peers"`
	}
	if err := d.call("getpeers", &r); err != nil {
		return nil
	}
	return r.Peers
}

// call sends one admin request and decodes its response into v.
func (d *Daemon) call(name string, v any) error {
	c, err := net.DialTimeout("unix", d.admin, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(c).Encode(map[string]string{"request": name}); err != nil {
		return err
	}
	var resp struct {
		Status   string          `json:"status"`
		Error    string          `json:"error"`
		Response json.RawMessage `json:"response"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return err
	}
	if resp.Status != "success" {
		return fmt.Errorf("admin %s: %s", name, resp.Error)
	}
	return json.Unmarshal(resp.Response, v)
}

// Stop ends the daemon with SIGTERM (SIGKILL after 10 s) and reports
// whether it ended cleanly. Calling it again returns the same result.
func (d *Daemon) Stop() error {
	d.once.Do(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-d.done:
			if err != nil {
				d.stopErr = fmt.Errorf("exit on SIGTERM: %w", err)
			}
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			d.stopErr = errors.New("still running 10s after SIGTERM (killed)")
		}
	})
	return d.stopErr
}

// Log is what the daemon printed so far.
func (d *Daemon) Log() string {
	d.out.mu.Lock()
	defer d.out.mu.Unlock()
	return d.out.b.String()
}

// lockedWriter serialises the daemon's stdout and stderr into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
