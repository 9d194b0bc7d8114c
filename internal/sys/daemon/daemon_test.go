package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

func TestStartStop(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	log := filepath.Join(t.TempDir(), "log")
	// The marker argument tells this daemon apart from any other sh.
	p, err := Start(sh, []string{"-c", "trap 'echo term; exit 0' TERM; echo started; while :; do sleep 0.05; done", "zos-daemon-test"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Kill(p.Pid, "zos-daemon-test") })
	if !Alive(p.Pid, "zos-daemon-test") {
		t.Fatalf("Alive(%d) = false right after start", p.Pid)
	}
	if Alive(p.Pid, "something-else") {
		t.Errorf("Alive with a foreign marker = true, want false")
	}
	testutil.Eventually(t, 5*time.Second, "the daemon to start", func() (bool, error) {
		out, _ := os.ReadFile(log)
		return strings.Contains(string(out), "started"), nil
	})
	if err := Stop(p.Pid, 5*time.Second, "zos-daemon-test"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Stop")
	}
	if Alive(p.Pid, "zos-daemon-test") {
		t.Errorf("Alive after Stop = true")
	}
	out, _ := os.ReadFile(log)
	if !strings.Contains(string(out), "started") || !strings.Contains(string(out), "term") {
		t.Errorf("log = %q, want started and term", out)
	}
}

func TestAliveNoProcess(t *testing.T) {
	if Alive(0) || Alive(-1) || Alive(1<<30) {
		t.Error("Alive of an impossible pid = true")
	}
}
