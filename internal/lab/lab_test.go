package lab

import (
	"os"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"relative dir", Config{Dir: "lab", Nodes: 2, ZOS: "/zos"}, "absolute"},
		{"long dir", Config{Dir: "/tmp/" + strings.Repeat("d", 30), Nodes: 2, ZOS: "/zos"}, "at most 28"},
		{"no nodes", Config{Dir: "/tmp/lab", Nodes: 0, ZOS: "/zos"}, "want 1 to 16"},
		{"too many nodes", Config{Dir: "/tmp/lab", Nodes: 17, ZOS: "/zos"}, "want 1 to 16"},
		{"no zos", Config{Dir: "/tmp/lab", Nodes: 2}, "zos binary"},
		{"ok", Config{Dir: "/tmp/lab", Nodes: 2, ZOS: "/zos"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestPlanNet: names stay within the kernel's 15 characters once the node
// adds its own suffixes, every node gets its own LAN address, and every
// name starts with the lab's prefix (what Find and down look for).
func TestPlanNet(t *testing.T) {
	n := planNet("a1b2c3", 16)
	if got, want := n.Internet, "zla1b2c3-inet"; got != want {
		t.Errorf("internet namespace: got %q, want %q", got, want)
	}
	seen := map[string]bool{}
	for i, nd := range n.Nodes {
		for _, name := range []string{nd.NS, nd.Prefix} {
			if !strings.HasPrefix(name, nsPrefix("a1b2c3")) {
				t.Errorf("node %d: %q lacks the lab prefix", i+1, name)
			}
		}
		if len(nd.Prefix) > 11 {
			t.Errorf("node %d: prefix %q is %d characters, want at most 11", i+1, nd.Prefix, len(nd.Prefix))
		}
		if seen[nd.IP.String()] || !LANGateway.Less(nd.IP) {
			t.Errorf("node %d: address %s repeated or not above the gateway", i+1, nd.IP)
		}
		seen[nd.IP.String()] = true
	}
}

func TestNodeIDFromLog(t *testing.T) {
	p := t.TempDir() + "/node.log"
	if got := nodeIDFromLog(p); got != 0 {
		t.Fatalf("no log: got %d, want 0", got)
	}
	writeFile(t, p, "msg=machine_facts\nlevel=INFO msg=node_registered node=7 twin=3 farm=1\n")
	if got := nodeIDFromLog(p); got != 7 {
		t.Fatalf("got %d, want 7", got)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
