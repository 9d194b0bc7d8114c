package netns

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestRootNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "ip")
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "zt-netns-" + hex.EncodeToString(b)
	t.Cleanup(func() { _ = Delete(name) })
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	if !Exists(name) {
		t.Fatalf("%s does not exist after Create", name)
	}
	if err := Create(name); err == nil {
		t.Error("creating it twice: got no error")
	}
	mine, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Run(name, "", "ip", "-o", "link")
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
		t.Errorf("links in a new namespace: got %q (%v), want only lo", out, err)
	}
	if err := Sysctl(name, "net/ipv4/ip_forward", "1"); err != nil {
		t.Error(err)
	}
	if now, _ := os.Readlink("/proc/self/ns/net"); now != mine {
		t.Errorf("the process moved from %s to %s", mine, now)
	}
	if err := Delete(name); err != nil || Exists(name) {
		t.Errorf("delete: %v, exists %v", err, Exists(name))
	}
	if err := Delete(name); err != nil {
		t.Errorf("deleting a missing namespace: %v", err)
	}
	if err := Create("a/b"); err == nil {
		t.Error("bad name: got no error")
	}
}
