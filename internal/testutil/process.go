package testutil

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// StartListening starts bin with args for the rest of the test and waits
// until addr (host:port) accepts connections. It is stopped at cleanup, and
// its output, returned as it is written, is logged if the test failed.
func StartListening(t testing.TB, addr, bin string, args ...string) *Buffer {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	out := &Buffer{}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		stop()
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		stop()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, out.String())
		}
	})
	Eventually(t, 10*time.Second, bin+" to listen on "+addr, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false, fmt.Errorf("%w\n%s", err, out.String())
		}
		c.Close()
		return true, nil
	})
	return out
}
