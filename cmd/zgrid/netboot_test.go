package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/node/boot"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/release"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// get returns a URL's status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestNetbootScriptServesTheFarmChannelsSignedRelease: zgrid's hub answers
// /boot/FARM.ipxe with the newest signed release of the farm's channel
// that has a kernel and an initramfs; the URLs in the script serve exactly
// the signed bytes; unknown farms, foreign tokens and channels without a
// bootable release are refused.
func TestNetbootScriptServesTheFarmChannelsSignedRelease(t *testing.T) {
	testutil.SkipShort(t, "runs zgrid with its hub")
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	a := gridtest.Start(t, gridd.Config{DataDir: data, Listen: "127.0.0.1", Port: natsd.RandomPort, HubPort: natsd.RandomPort,
		Replicas: 1, Auth: true, ReleaseTwins: []uint32{1}})
	ctx := context.Background()
	connect := func() *nats.Conn {
		nc, err := rmb.Connect(a.NATS, k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	tw, err := registry.NewClient(connect(), k).CreateTwin(ctx, "")
	if err != nil || tw.ID != 1 {
		t.Fatalf("CreateTwin: got %+v, %v, want twin 1", tw, err)
	}
	var farm registry.Farm
	_ = testutil.Poll(5*time.Second, func() (bool, error) {
		farm, err = registry.NewClient(connect(), k).CreateFarm(ctx, "boot")
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("CreateFarm: %v", err)
	}
	reg := registry.NewClient(connect(), k)
	if err := reg.SetFarmChannel(ctx, farm.ID, "testing"); err != nil {
		t.Fatal(err)
	}
	hubURL := "http://" + a.Hub
	script := hubURL + "/boot/" + itoa(farm.ID) + ".ipxe"

	// No release repository yet.
	if code, body := get(t, script); code != http.StatusServiceUnavailable {
		t.Fatalf("before any release: got %d %q, want 503", code, body)
	}

	repo, err := release.Init(filepath.Join(t.TempDir(), "repo"), release.InitOptions{}, release.Config{})
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	add := func(channel, version string, names ...string) map[string][]byte {
		out, paths := map[string][]byte{}, map[string]string{}
		for _, n := range names {
			b := []byte(n + " of " + channel + " " + version)
			p := filepath.Join(files, channel+version+n)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out[n], paths[n] = b, p
		}
		if err := repo.Add(channel, version, paths); err != nil {
			t.Fatal(err)
		}
		return out
	}
	v1 := add("testing", "v1", "vmlinuz", "initramfs.img", "zos")
	add("testing", "v2", "zos") // newer, but not bootable: v1 is served
	add("production", "v9", "vmlinuz", "initramfs.img")
	if have, want, err := repo.Sign(); err != nil || have < want {
		t.Fatalf("Sign: %d/%d %v", have, want, err)
	}
	if _, err := repo.Publish(ctx, flist.NewHubClient(hubURL, flist.KeySigner{Twin: 1, Key: k})); err != nil {
		t.Fatal(err)
	}

	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root)
	rootSum := hex.EncodeToString(sum[:])
	code, body := get(t, script)
	if code != http.StatusOK {
		t.Fatalf("boot script: got %d %q", code, body)
	}
	_, natsPortStr, _ := strings.Cut(strings.TrimPrefix(a.NATS, "nats://"), ":")
	for _, want := range []string{"#!ipxe\n", "farm=" + itoa(farm.ID), "grid=nats://127.0.0.1:" + natsPortStr,
		"update_channel=testing", "Zero-OS v1 (testing)", "update_hub=" + hubURL + " ", "update_root=sha256:" + rootSum,
		"console=ttyS0", "\nboot\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("boot script lacks %q:\n%s", want, body)
		}
	}
	// The kernel and initramfs URLs serve the signed v1 bytes; the node
	// reads every word of the command line without complaint.
	for _, l := range strings.Split(body, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || (f[0] != "kernel" && f[0] != "initrd") {
			continue
		}
		if f[0] == "kernel" {
			cfg, errs := boot.ParseCmdline("", strings.Join(f[2:], " "))
			if len(errs) > 0 || cfg.Farm != farm.ID || cfg.Grid != "nats://127.0.0.1:"+natsPortStr || cfg.UpdateHub != hubURL ||
				cfg.UpdateRoot != "sha256:"+rootSum || cfg.UpdateChannel != "testing" {
				t.Errorf("the node reads the command line as %+v, errors %v", cfg, errs)
			}
		}
		name := map[string]string{"kernel": "vmlinuz", "initrd": "initramfs.img"}[f[0]]
		code, got := get(t, f[1])
		if code != http.StatusOK || !bytes.Equal([]byte(got), v1[name]) {
			t.Errorf("%s %s: got %d %q, want %q", f[0], f[1], code, got, v1[name])
		}
	}

	// A farm token of another farm is refused; an unknown farm is 404.
	tok, err := registry.NewFarmToken(k, farm.ID+1, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, script+"?farm_token="+tok.String()); code != http.StatusBadRequest {
		t.Errorf("foreign farm token: got %d %q, want 400", code, body)
	}
	if code, body := get(t, hubURL+"/boot/999.ipxe"); code != http.StatusNotFound {
		t.Errorf("unknown farm: got %d %q, want 404", code, body)
	}
	if code, body := get(t, hubURL+"/boot/x.ipxe"); code != http.StatusNotFound {
		t.Errorf("bad farm id: got %d %q, want 404", code, body)
	}

	// Signed targets tampered with on the hub's disk are refused by TUF:
	// no script is served from them.
	tsFile := filepath.Join(data, "hub", "release", "metadata", "timestamp.json")
	raw, err := os.ReadFile(tsFile)
	if err != nil {
		t.Fatal(err)
	}
	var ts map[string]any
	if err := json.Unmarshal(raw, &ts); err != nil {
		t.Fatal(err)
	}
	signed := ts["signed"].(map[string]any)
	signed["version"] = signed["version"].(float64) + 1
	forged, _ := json.Marshal(ts)
	if err := os.WriteFile(tsFile, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, script); code != http.StatusServiceUnavailable || !strings.Contains(body, "verifying release metadata") {
		t.Errorf("forged timestamp: got %d %q, want 503 verifying release metadata", code, body)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// TestBootRootPinsTheReleaseRoot: zgrid --boot-root FILE serves boot
// scripts only from releases signed under that root: a repository with
// another root published to the hub (first, so nothing else was ever
// trusted: without the flag it would be) is refused with the TUF
// reason; the pinned repository, published once the hub's repository was
// wiped, is served, with the pinned root's hash in the script. A file that is not root metadata is refused at start.
func TestBootRootPinsTheReleaseRoot(t *testing.T) {
	testutil.SkipShort(t, "runs zgrid with its hub")
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := release.Init(filepath.Join(t.TempDir(), "pinned"), release.InitOptions{}, release.Config{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := release.Init(filepath.Join(t.TempDir(), "other"), release.InitOptions{}, release.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(pinned.Dir(), "metadata", "1.root.json")

	for _, tt := range []struct {
		name string
		args []string
	}{
		{"missing file", []string{"--data", t.TempDir(), "--hub", "1", "--boot-root", rootFile + ".gone"}},
	} {
		if _, err := parseFlags(tt.args, io.Discard); err == nil {
			t.Errorf("%s: got no error, want one", tt.name)
		}
	}

	data := t.TempDir()
	cfg, err := parseFlags([]string{"--data", data, "--hub", "1", "--release-twins", "1", "--boot-root", rootFile}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Port, cfg.HubPort, cfg.HTTPPort = "127.0.0.1", natsd.RandomPort, natsd.RandomPort, 0
	// Root metadata that does not parse stops the hub from starting.
	badCfg := cfg
	badCfg.DataDir, badCfg.BootRoot = t.TempDir(), []byte(`{"signed":{}}`)
	bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gridd.Run(bctx, badCfg, testutil.Logger(t)); err == nil || !strings.Contains(err.Error(), "not TUF root metadata") {
		t.Errorf("bad boot root: got %v, want not TUF root metadata", err)
	}

	a := gridtest.Start(t, cfg)
	ctx := context.Background()
	// A twin's rights come with its connection: connect again once it exists.
	connect := func() *registry.Client {
		nc, err := rmb.Connect(a.NATS, k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return registry.NewClient(nc, k)
	}
	if tw, err := connect().CreateTwin(ctx, ""); err != nil || tw.ID != 1 {
		t.Fatalf("CreateTwin: got %+v, %v, want twin 1", tw, err)
	}
	var farm registry.Farm
	_ = testutil.Poll(5*time.Second, func() (bool, error) {
		farm, err = connect().CreateFarm(ctx, "pinned")
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("CreateFarm: %v", err)
	}
	if err := connect().SetFarmChannel(ctx, farm.ID, "testing"); err != nil {
		t.Fatal(err)
	}
	hubURL := "http://" + a.Hub
	script := hubURL + "/boot/" + itoa(farm.ID) + ".ipxe"
	files := t.TempDir()
	publish := func(r *release.Repo, version string) {
		t.Helper()
		paths := map[string]string{}
		for _, n := range []string{"vmlinuz", "initramfs.img"} {
			p := filepath.Join(files, version+n)
			if err := os.WriteFile(p, []byte(n+" "+version), 0o644); err != nil {
				t.Fatal(err)
			}
			paths[n] = p
		}
		if err := r.Add("testing", version, paths); err != nil {
			t.Fatal(err)
		}
		if have, want, err := r.Sign(); err != nil || have < want {
			t.Fatalf("Sign: %d/%d %v", have, want, err)
		}
		if _, err := r.Publish(ctx, flist.NewHubClient(hubURL, flist.KeySigner{Twin: 1, Key: k})); err != nil {
			t.Fatal(err)
		}
	}

	publish(other, "v9")
	if code, body := get(t, script); code != http.StatusServiceUnavailable || !strings.Contains(body, "verifying release metadata") {
		t.Fatalf("a release under another root: got %d %q, want 503 verifying release metadata", code, body)
	}
	// The hub keeps the first root published: the operator wipes its
	// release repository before publishing the right one.
	if err := os.RemoveAll(filepath.Join(data, "hub", "release")); err != nil {
		t.Fatal(err)
	}
	publish(pinned, "v1")
	code, body := get(t, script)
	root, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root)
	if code != http.StatusOK || !strings.Contains(body, "Zero-OS v1 (testing)") || !strings.Contains(body, "update_root=sha256:"+hex.EncodeToString(sum[:])) {
		t.Fatalf("the pinned root's release: got %d %q, want v1 with the pinned root's hash", code, body)
	}
}
