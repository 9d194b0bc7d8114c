package zdb

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestDiskFull runs the store on a tiny tmpfs: the client that fills it gets
// a clear error, acknowledged keys stay readable, other clients are served,
// and the store reopens with every acknowledged key.
func TestDiskFull(t *testing.T) {
	testutil.RequireRoot(t)
	mount := testutil.RequireBinary(t, "mount")
	umount := testutil.RequireBinary(t, "umount")
	dir := t.TempDir()
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size=1m", "zdb-test", dir).CombinedOutput(); err != nil {
		testutil.Skip(t, fmt.Sprintf("cannot mount tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() { exec.Command(umount, dir).Run() })
	s := openStore(t, dir, nil)
	addr, _ := startServer(t, ServerConfig{}, s)
	c := dial(t, addr)
	other := dial(t, addr)
	value := strings.Repeat("v", 64<<10)
	acked := map[string][]byte{}
	var last string
	for i := 0; i < 100; i++ {
		k := fmt.Sprint("key", i)
		r := c.do("SET", k, value)
		if r.Kind == '-' {
			last = string(r.Str)
			break
		}
		acked[k] = []byte(value)
	}
	if last != "No space left on device" {
		t.Fatalf("got %q after %d keys, want the disk full error", last, len(acked))
	}
	other.expect("+PONG", "PING")
	for k := range acked {
		if r := other.do("GET", k); len(r.Str) != len(value) {
			t.Fatalf("GET %s after disk full: got %s", k, r)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	s = openStore(t, dir, nil)
	defer s.Close()
	checkContent(t, mustNS(t, s, DefaultNamespace), acked)
}
