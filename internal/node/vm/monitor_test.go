package vm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// TestCheckInternalError: a QEMU that is alive but reports
// "internal-error" over QMP is killed and restarted like a crashed one
// (the restart fails here: the configured QEMU binary does not exist).
func TestCheckInternalError(t *testing.T) {
	sleep := testutil.RequireBinary(t, "sleep")
	root := t.TempDir()
	dir := filepath.Join(root, "vm1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A stand-in process whose name and argv look like the VM's QEMU.
	fake := filepath.Join(t.TempDir(), "qemu-system-fake")
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake, "30", dir+"/console.log")
	cmd.Args[0] = fake
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-waited })
	l, err := net.Listen("unix", filepath.Join(dir, "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, `{"QMP": {"version": {}, "capabilities": []}}`+"\n")
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "query-status") {
					io.WriteString(c, `{"return": {"running": false, "status": "internal-error"}}`+"\n")
				} else {
					io.WriteString(c, `{"return": {}}`+"\n")
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-served })

	log := testutil.Logger(t)
	m, err := New(Config{Root: root, Kernel: "/nonexistent/vmlinux", Initrd: "/nonexistent/initrd", Accel: qemu.AccelTCG},
		HostSystem("/nonexistent/qemu", "/nonexistent/virtiofsd"), log)
	if err != nil {
		t.Fatal(err)
	}
	m.vms["vm1"] = &machine{spec: Spec{Name: "vm1", CPUs: 1, MemoryMiB: 256, RootDir: t.TempDir()}, dir: dir,
		state: state{QEMU: cmd.Process.Pid}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev := m.Check(ctx, time.Now())
	if len(ev) != 1 || ev[0].Restarted || ev[0].Err == nil || !strings.Contains(ev[0].Err.Error(), "restarting vm vm1") {
		t.Fatalf("got events %+v, want a failed restart of vm1", ev)
	}
	select {
	case <-waited:
	case <-ctx.Done():
		t.Fatal("the QEMU stand-in in internal-error was not killed")
	}
	if _, err := m.Inspect(ctx, "vm1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect: got %v, want ErrNotFound", err)
	}
}
