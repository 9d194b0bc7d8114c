package update

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/flist/hub"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/release"
	"github.com/zos-go/zos/internal/testutil"
)

// fakeZos is a zos stand-in (a real executable): it says version v and,
// run as `node`, appends its version to the file LOG.
func fakeZos(v, log string) []byte {
	return []byte(fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = version ]; then echo %s; exit 0; fi\necho %s >> %s\n", v, v, log))
}

// channel is a real hub with a release repository whose manager is twin 1.
type channel struct {
	url  string
	dir  string // the hub's data directory
	repo *release.Repo
	up   *flist.HubClient
	root []byte
}

func newChannel(t *testing.T) *channel {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	hubDir := t.TempDir()
	h, err := hub.New(hub.Config{Dir: hubDir, ReleaseTwins: []uint32{1}}, testutil.TwinKeys{1: k.Public()}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	r, err := release.Init(filepath.Join(t.TempDir(), "repo"), release.InitOptions{}, release.Config{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.Root()
	if err != nil {
		t.Fatal(err)
	}
	return &channel{url: srv.URL, dir: hubDir, repo: r, up: flist.NewHubClient(srv.URL, flist.KeySigner{Twin: 1, Key: k}), root: root}
}

// publish releases zos (bytes) as testing/v.
func (c *channel) publish(t *testing.T, v string, zos []byte) {
	t.Helper()
	c.publishIn(t, "testing", v, zos)
}

// publishIn releases zos (bytes) as ch/v.
func (c *channel) publishIn(t *testing.T, ch, v string, zos []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zos")
	if err := os.WriteFile(p, zos, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.repo.Add(ch, v, map[string]string{"zos": p}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.repo.Sign(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.repo.Publish(context.Background(), c.up); err != nil {
		t.Fatal(err)
	}
}

func (c *channel) manager(t *testing.T, dir, running string, trial bool) *Manager {
	t.Helper()
	m, err := New(Config{Dir: dir, Hub: c.url, Root: c.root, Channel: "testing", Every: time.Hour, Gate: 2 * time.Second, Running: running}, trial, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func healthy() error { return nil }

// TestCheckInstallsAndSwitches: a newer signed release is installed into a
// verified slot and switched to as a trial; an older or equal one is not;
// one whose zos cannot say its version is refused before the switch,
// recorded failed, and not tried again.
func TestCheckInstallsAndSwitches(t *testing.T) {
	c := newChannel(t)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "ran")
	c.publish(t, "v1", fakeZos("v1", log))
	ctx := context.Background()
	if sw := c.manager(t, dir, "v1", false).check(ctx); sw != nil {
		t.Fatalf("same version: got switch %v, want none", sw)
	}
	c.publish(t, "v2", fakeZos("v2", log))
	sw := c.manager(t, dir, "v1", false).check(ctx)
	if sw == nil || sw.Version != "v2" || sw.Trial != "v2" || sw.Binary != Binary(dir, "v2") {
		t.Fatalf("got %+v, want a trial switch to v2", sw)
	}
	if _, err := verifySlot(dir, "v2"); err != nil {
		t.Fatal(err)
	}
	s, _ := LoadState(dir)
	if s.Trying != "v2" {
		t.Fatalf("state: got trying %q, want v2", s.Trying)
	}
	// The gate fails without trial: Boot on the next start marks v2 failed.
	s.Trying = ""
	if err := SaveState(dir, s); err != nil {
		t.Fatal(err)
	}

	c.publish(t, "v3", []byte("#!/bin/sh\nexit 1\n"))
	m := c.manager(t, dir, "v1", false)
	if sw := m.check(ctx); sw != nil && sw.Version == "v3" {
		t.Fatalf("broken v3: got switch %+v, want a refusal", sw)
	}
	if got := m.Failed(); !slices.Contains(got, "v3") {
		t.Fatalf("failed: got %v, want v3 in it", got)
	}
	// v3 is never tried again, v2 stays the newest candidate.
	if sw := m.check(ctx); sw == nil || sw.Version != "v2" {
		t.Fatalf("after v3 failed: got %+v, want v2 offered", sw)
	}
}

// TestGate: a trial that comes up healthy becomes current with the old
// current as previous; one that does not within the bound is failed and
// the previous version's binary is named for exec.
func TestGate(t *testing.T) {
	c := newChannel(t)
	ctx := context.Background()
	tests := []struct {
		name        string
		healthy     func() error
		wantSwitch  bool
		wantCurrent string
		wantFailed  []string
	}{
		{"healthy trial is confirmed", healthy, false, "v2", nil},
		{"unhealthy trial rolls back", func() error { return errors.New("not connected to the grid") }, true, "v1", []string{"v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveState(dir, State{Current: "v1", Trying: "v2", Installed: "/usr/bin/zos"}); err != nil {
				t.Fatal(err)
			}
			for _, v := range []string{"v1", "v2"} {
				writeSlot(t, dir, v, fakeZos(v, "/dev/null"))
			}
			m := c.manager(t, dir, "v2", true)
			err := m.gate(ctx, tt.healthy)
			var sw *Switch
			if got := errors.As(err, &sw); got != tt.wantSwitch {
				t.Fatalf("got %v, want a switch: %v", err, tt.wantSwitch)
			}
			if sw != nil && (sw.Binary != Binary(dir, "v1") || sw.Trial != "") {
				t.Fatalf("got %+v, want back to v1's binary, no trial", sw)
			}
			s, _ := LoadState(dir)
			if s.Current != tt.wantCurrent || s.Trying != "" || !slices.Equal(s.Failed, tt.wantFailed) {
				t.Fatalf("state: got %+v, want current %s, failed %v", s, tt.wantCurrent, tt.wantFailed)
			}
		})
	}
}

// writeSlot makes a complete slot as install would (for Boot's tests).
func writeSlot(t *testing.T, dir, v string, zos []byte) {
	t.Helper()
	c := staticFetcher{"zos": zos}
	rel := release.Release{Channel: "testing", Version: v, Artifacts: []release.Artifact{{Name: "zos", SHA256: c.sum("zos")}}}
	if err := install(dir, c, rel); err != nil {
		t.Fatal(err)
	}
}

// TestBoot: which version a starting node runs, whatever step of an
// update a kill -9 or a power cut interrupted.
func TestBoot(t *testing.T) {
	tests := []struct {
		name       string
		state      State
		running    string
		env        string
		prepare    func(t *testing.T, dir string)
		wantExec   string // slot version exec'd ("" = run on)
		wantTrial  bool
		wantFailed []string
	}{
		{name: "no update yet runs on", running: "v1"},
		{name: "current slot is exec'd", state: State{Current: "v2"}, running: "v1", wantExec: "v2"},
		{name: "already the current runs on", state: State{Current: "v2"}, running: "v2"},
		{name: "the trial exec'd goes on", state: State{Current: "v2", Trying: "v3"}, running: "v3", env: "v3", wantTrial: true},
		{name: "interrupted trial is retried later, current exec'd", state: State{Current: "v2", Trying: "v3"}, running: "v1", wantExec: "v2"},
		{name: "trial interrupted twice fails", state: State{Current: "v2", Trying: "v3", Interrupted: []string{"v3"}}, running: "v1", wantExec: "v2", wantFailed: []string{"v3"}},
		{name: "trial marker of another version is no trial", state: State{Current: "v2", Trying: "v3"}, running: "v3", env: "v9", wantExec: "v2"},
		{name: "tampered current falls back to previous", state: State{Current: "v3", Previous: "v2"}, running: "v1", wantExec: "v2",
			prepare: func(t *testing.T, dir string) {
				if err := os.WriteFile(Binary(dir, "v3"), []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "half-written slot (kill -9 in install) is not used", state: State{Current: "v4", Previous: "v2"}, running: "v1", wantExec: "v2",
			prepare: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(slotsDir(dir), ".tmp-v4"), 0o755); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "nothing usable runs the installed binary", state: State{Current: "v4", Previous: "v5"}, running: "v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, v := range []string{"v2", "v3"} {
				writeSlot(t, dir, v, fakeZos(v, "/dev/null"))
			}
			if err := SaveState(dir, tt.state); err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			getenv := func(k string) string {
				if k == EnvTrial {
					return tt.env
				}
				return ""
			}
			d := Boot(dir, "/usr/bin/zos", tt.running, []string{"--data", "x"}, getenv, testutil.Logger(t))
			want := ""
			if tt.wantExec != "" {
				want = Binary(dir, tt.wantExec)
			}
			if d.Exec != want || d.Trial != tt.wantTrial {
				t.Fatalf("got %+v, want exec %q trial %v", d, want, tt.wantTrial)
			}
			s, _ := LoadState(dir)
			if !slices.Equal(s.Failed, tt.wantFailed) || s.Installed != "/usr/bin/zos" || !slices.Equal(s.Args, []string{"--data", "x"}) {
				t.Fatalf("state: got %+v, want failed %v", s, tt.wantFailed)
			}
		})
	}
}

// TestGuard: a trial process that dies before its gate is marked failed
// by the guard, which starts the current version again with the node's
// arguments.
func TestGuard(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(t.TempDir(), "ran")
	writeSlot(t, dir, "v2", fakeZos("v2", ran))
	trial := exec.Command("sh", "-c", "exit 1")
	if err := trial.Start(); err != nil {
		t.Fatal(err)
	}
	pid := trial.Process.Pid
	_ = trial.Wait() // dead and reaped, as the node's parent would
	if err := SaveState(dir, State{Current: "v2", Trying: "v3", Args: []string{"--data", "x"}}); err != nil {
		t.Fatal(err)
	}
	err := Guard(context.Background(), GuardConfig{Dir: dir, PID: pid, Version: "v3", Bound: time.Minute, Stdout: os.Stderr, Stderr: os.Stderr}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := LoadState(dir)
	if s.Trying != "" || !slices.Equal(s.Failed, []string{"v3"}) {
		t.Fatalf("state: got %+v, want v3 failed", s)
	}
	testutil.Eventually(t, 10*time.Second, "v2 started again", func() (bool, error) {
		b, _ := os.ReadFile(ran)
		return strings.TrimSpace(string(b)) == "v2", nil
	})
}

// staticFetcher serves artifacts from memory (the slot tests' source; the
// TUF path is TestCheckInstallsAndSwitches').
type staticFetcher map[string][]byte

func (f staticFetcher) Fetch(a release.Artifact) ([]byte, error) { return f[a.Name], nil }

func (f staticFetcher) sum(name string) string {
	return fmt.Sprintf("%x", sha256Sum(f[name]))
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// TestCheckRefusesBadRelease: what the hub serves wrongly (a tampered
// artifact, an expired timestamp, an older timestamp replayed) is refused
// and changes nothing on the node: no slot, the same state.
func TestCheckRefusesBadRelease(t *testing.T) {
	tests := []struct {
		name   string
		want   string // the reason logged
		attack func(t *testing.T, c *channel, check func())
	}{
		{"tampered artifact", "hash verification failed", func(t *testing.T, c *channel, _ func()) {
			c.publish(t, "v2", fakeZos("v2", "/dev/null"))
			files, _ := filepath.Glob(filepath.Join(c.dir, "release", "targets", "testing", "v2", "*.zos"))
			if len(files) != 1 {
				t.Fatalf("got %v, want one v2 zos on the hub", files)
			}
			if err := os.WriteFile(files[0], fakeZos("v6", "/dev/null"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"download cut in half", "length", func(t *testing.T, c *channel, _ func()) {
			c.publish(t, "v2", fakeZos("v2", "/dev/null"))
			files, _ := filepath.Glob(filepath.Join(c.dir, "release", "targets", "testing", "v2", "*.zos"))
			if len(files) != 1 {
				t.Fatalf("got %v, want one v2 zos on the hub", files)
			}
			if err := os.Truncate(files[0], 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired timestamp", "timestamp.json is expired", func(t *testing.T, c *channel, _ func()) {
			r, err := release.Open(c.repo.Dir(), release.Config{Now: func() time.Time { return time.Now().Add(-72 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			c.repo = r
			c.publish(t, "v2", fakeZos("v2", "/dev/null"))
		}},
		{"older timestamp replayed", "new timestamp version", func(t *testing.T, c *channel, check func()) {
			p := filepath.Join(c.dir, "release", "metadata", "timestamp.json")
			old, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// The node sees a newer timestamp (no new release), then the old one again.
			if err := c.repo.Refresh(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.repo.Publish(context.Background(), c.up); err != nil {
				t.Fatal(err)
			}
			check()
			if err := os.WriteFile(p, old, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChannel(t)
			c.publish(t, "v1", fakeZos("v1", "/dev/null"))
			dir := t.TempDir()
			if sw := c.manager(t, dir, "v1", false).check(context.Background()); sw != nil {
				t.Fatalf("got %+v before the attack, want no switch", sw)
			}
			check := func() {
				if sw := c.manager(t, dir, "v1", false).check(context.Background()); sw != nil {
					t.Fatalf("got %+v, want no switch", sw)
				}
			}
			tt.attack(t, c, check)
			before, _ := LoadState(dir)
			var logs testutil.Buffer
			m, err := New(Config{Dir: dir, Hub: c.url, Root: c.root, Channel: "testing", Running: "v1"}, false, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if sw := m.check(context.Background()); sw != nil {
				t.Fatalf("got %+v, want the release refused", sw)
			}
			if !strings.Contains(logs.String(), tt.want) {
				t.Fatalf("log %q does not give the reason %q", logs.String(), tt.want)
			}
			if _, err := os.Stat(SlotDir(dir, "v2")); err == nil {
				t.Fatal("a v2 slot was made")
			}
			after, _ := LoadState(dir)
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("state: got %+v, want %+v", after, before)
			}
		})
	}
}

// nodeAt is a node of a farm as the rollout sees it.
type nodeAt struct {
	farm, node uint32
	channel    string // the farm's choice
}

func (h nodeAt) Healthy() error { return nil }
func (h nodeAt) NodeID() uint32 { return h.node }
func (h nodeAt) FarmID() uint32 { return h.farm }
func (h nodeAt) FarmChannel(context.Context) (string, error) {
	return h.channel, nil
}

// TestRolloutGatesCheck: a release staged for test farm 7 reaches farm 7's
// node only; at 100% every node; paused, none.
func TestRolloutGatesCheck(t *testing.T) {
	c := newChannel(t)
	c.publish(t, "v2", fakeZos("v2", "/dev/null"))
	stage := func(ro *release.Rollout) {
		t.Helper()
		if err := c.repo.SetRollout("testing", "v2", ro); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.repo.Sign(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.repo.Publish(context.Background(), c.up); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		rollout *release.Rollout
		host    nodeAt
		want    bool
	}{
		{"test farm takes it", &release.Rollout{Farms: []uint32{7}}, nodeAt{farm: 7, node: 1}, true},
		{"other farm waits", &release.Rollout{Farms: []uint32{7}}, nodeAt{farm: 8, node: 2}, false},
		{"everyone at 100%", &release.Rollout{Farms: []uint32{7}, Percent: 100}, nodeAt{farm: 8, node: 2}, true},
		{"paused: nobody", &release.Rollout{Farms: []uint32{7}, Percent: 100, Paused: true}, nodeAt{farm: 7, node: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stage(tt.rollout)
			m := c.manager(t, t.TempDir(), "v1", false)
			m.host = tt.host
			sw := m.check(context.Background())
			if got := sw != nil && sw.Version == "v2"; got != tt.want {
				t.Fatalf("got switch %+v, want one: %v", sw, tt.want)
			}
		})
	}
}

// TestFarmChannel: the channel the node's farm chose wins over the node's
// default: a release in production reaches a node started on testing
// whose farm chose production, and not one whose farm chose nothing.
func TestFarmChannel(t *testing.T) {
	c := newChannel(t)
	c.publishIn(t, "production", "v2", fakeZos("v2", "/dev/null"))
	for _, tt := range []struct {
		farmChannel string
		want        bool
	}{{"production", true}, {"", false}} {
		m := c.manager(t, t.TempDir(), "v1", false)
		m.host = nodeAt{farm: 1, node: 1, channel: tt.farmChannel}
		sw := m.check(context.Background())
		if got := sw != nil && sw.Version == "v2"; got != tt.want {
			t.Errorf("farm channel %q: got switch %+v, want one: %v", tt.farmChannel, sw, tt.want)
		}
	}
}

// TestInstallFullDisk: a release that does not fit on the node's disk
// (a 64 KiB tmpfs here) is not installed: no slot, no half slot, the state
// unchanged; the node stays on its version.
func TestInstallFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		testutil.Skip(t, fmt.Sprintf("mounting a tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	c := newChannel(t)
	big := append(fakeZos("v2", "/dev/null"), make([]byte, 256<<10)...)
	c.publish(t, "v2", big)
	var logs testutil.Buffer
	m, err := New(Config{Dir: dir, Hub: c.url, Root: c.root, Channel: "testing", Running: "v1"}, false, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if sw := m.check(context.Background()); sw != nil {
		t.Fatalf("got %+v, want no switch", sw)
	}
	if !strings.Contains(logs.String(), "no space left") {
		t.Fatalf("log %q does not say the disk is full", logs.String())
	}
	ents, _ := os.ReadDir(slotsDir(dir))
	if len(ents) != 0 {
		t.Fatalf("slots left: %v", ents)
	}
	if s, _ := LoadState(dir); s.Trying != "" || len(s.Failed) != 0 {
		t.Fatalf("state: got %+v, want unchanged", s)
	}
}
