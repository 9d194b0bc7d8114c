package boot

import (
	"context"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/update"
	"github.com/zos-go/zos/internal/sys/dhcp"
	"github.com/zos-go/zos/internal/sys/pid1"
	"github.com/zos-go/zos/internal/testutil"
)

// startSleeper starts a real process standing for the node child (it
// runs until stopped) and makes sure it is gone at the end.
func startSleeper(t *testing.T) *os.Process {
	t.Helper()
	testutil.RequireBinary(t, "sleep")
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "300"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		p.Wait()
	})
	return p
}

// TestWaitNodeStopsAnOverdueTrial: init's supervisor, guarding a booted
// node, returns from waiting once the trial named in the update state
// has run past its bound without confirming; it stops the process, the
// trial is recorded failed (never retried) and the next start runs the
// version it was switched from. A node without a trial, or within its
// bound, is left running.
func TestWaitNodeStopsAnOverdueTrial(t *testing.T) {
	tests := []struct {
		name       string
		state      update.State
		wantReason string
		wantFailed []string
	}{
		{"trial past its bound", update.State{Current: "v1", Trying: "v2", SwitchedAt: time.Now().Add(-time.Minute).UnixMilli()},
			"update trial v2 not confirmed within 30s", []string{"v2"}},
		{"trial within its bound", update.State{Current: "v1", Trying: "v2", SwitchedAt: time.Now().UnixMilli()}, "shutdown", nil},
		{"no trial", update.State{Current: "v1"}, "shutdown", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := update.SaveState(dir, tt.state); err != nil {
				t.Fatal(err)
			}
			p := startSleeper(t)
			st := &state{lease: &dhcp.Lease{IP: net.ParseIP("10.0.2.15")}}
			exits := make(chan pid1.Exit)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, reason := waitNode(ctx, p.Pid, exits, st, "10.0.2.15", &trialGuard{dir: dir, bound: 30 * time.Second})
			if reason != tt.wantReason {
				t.Fatalf("got reason %q, want %q", reason, tt.wantReason)
			}
			if reason == "shutdown" {
				if err := syscall.Kill(p.Pid, 0); err != nil {
					t.Fatalf("the node process is gone (%v), want it running", err)
				}
				return
			}
			stopNode(p, exits, testutil.Logger(t))
			if err := syscall.Kill(p.Pid, 0); err == nil {
				t.Fatal("the overdue trial still runs after stopNode")
			}
			v, err := update.GiveUpTrial(dir)
			if err != nil || v != "v2" {
				t.Fatalf("GiveUpTrial: got %q, %v, want v2", v, err)
			}
			s, err := update.LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if s.Trying != "" || s.Current != "v1" || !slices.Equal(s.Failed, tt.wantFailed) {
				t.Fatalf("state: got %+v, want current v1, no trial, failed %v", s, tt.wantFailed)
			}
		})
	}
	// Without self-update there is no guard: nothing is ever overdue.
	var g *trialGuard
	if v := g.overdue(time.Now()); v != "" {
		t.Fatalf("nil guard: got %q, want none", v)
	}
}
