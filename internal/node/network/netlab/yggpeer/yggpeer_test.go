package yggpeer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pinnedVersion finds the yggdrasil-go requirement in a go.mod, in a
// require block or on a line of its own, and says when there is none.
func TestPinnedVersion(t *testing.T) {
	for _, tt := range []struct {
		name, gomod, want, err string
	}{
		{"block", "module x\n\nrequire (\n\tgithub.com/yggdrasil-network/yggdrasil-go v0.5.14\n)\n", "v0.5.14", ""},
		{"single line", "module x\nrequire github.com/yggdrasil-network/yggdrasil-go v0.5.9 // indirect\n", "v0.5.9", ""},
		{"missing", "module x\n\nrequire golang.org/x/sys v0.1.0\n", "", "no github.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "go.mod")
			if err := os.WriteFile(p, []byte(tt.gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := pinnedVersion(p)
			if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("got %q, %v, want %q, error containing %q", got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := pinnedVersion(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("a missing go.mod gave no error")
	}
}

// The configuration the daemon runs with is its own -genconf output (its
// key kept) with the test's listeners, peers and TUN, the admin socket on
// the given path and multicast discovery off; two configurations have
// different keys.
func TestGenconf(t *testing.T) {
	bin := Binary(t)
	cfg := Config{Listen: []string{"tcp://10.99.0.1:9651"}, IfName: "ygg7"}
	out, err := genconf(bin, cfg, "/tmp/x/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		PrivateKey          string
		Listen, Peers       []string
		IfName, AdminListen string
		MulticastInterfaces []any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Listen, cfg.Listen) || got.Peers == nil || len(got.Peers) != 0 || got.IfName != "ygg7" ||
		got.AdminListen != "unix:///tmp/x/admin.sock" || got.MulticastInterfaces == nil || len(got.MulticastInterfaces) != 0 || got.PrivateKey == "" {
		t.Errorf("got %s, want the listener, no peers, ygg7, the admin socket, no multicast and a key", out)
	}
	again, err := genconf(bin, Config{}, "/tmp/x/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	var other struct{ PrivateKey, IfName string }
	if err := json.Unmarshal(again, &other); err != nil {
		t.Fatal(err)
	}
	if other.PrivateKey == got.PrivateKey || other.IfName != "ygg0" {
		t.Errorf("second configuration: key %v the same, IfName %q, want a new key and ygg0", other.PrivateKey == got.PrivateKey, other.IfName)
	}
}
