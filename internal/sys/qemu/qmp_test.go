package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// fakeQMP serves a scripted QMP server on a unix socket and records the
// commands it got.
type fakeQMP struct {
	mu     sync.Mutex // guards cmds and status
	cmds   []string
	status string
}

func (f *fakeQMP) serve(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.handle(c)
		}
	}()
	return sock
}

func (f *fakeQMP) handle(c net.Conn) {
	defer c.Close()
	io.WriteString(c, `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}`+"\n")
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var req struct {
			Execute string `json:"execute"`
		}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			io.WriteString(c, `{"error": {"class": "GenericError", "desc": "bad json"}}`+"\n")
			continue
		}
		f.mu.Lock()
		f.cmds = append(f.cmds, req.Execute)
		st := f.status
		switch req.Execute {
		case "stop":
			f.status = "paused"
		case "cont":
			f.status = "running"
		}
		f.mu.Unlock()
		// An event before the reply must be skipped.
		io.WriteString(c, `{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}`+"\n")
		switch req.Execute {
		case "query-status":
			io.WriteString(c, `{"return": {"running": `+map[bool]string{true: "true", false: "false"}[st == "running"]+`, "status": "`+st+`"}}`+"\n")
		case "bogus":
			io.WriteString(c, `{"error": {"class": "CommandNotFound", "desc": "The command bogus has not been found"}}`+"\n")
		case "quit":
			return
		default:
			io.WriteString(c, `{"return": {}}`+"\n")
		}
	}
}

func TestQMPFake(t *testing.T) {
	f := &fakeQMP{status: "running"}
	sock := f.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	steps := []struct {
		do   func() error
		want string
	}{
		{func() error { return q.Stop(ctx) }, "paused"},
		{func() error { return q.Cont(ctx) }, "running"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		st, err := q.QueryStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != s.want || st.Running != (s.want == "running") {
			t.Fatalf("got status %+v, want %s", st, s.want)
		}
	}
	if err := q.Execute(ctx, "bogus", nil, nil); !errors.Is(err, ErrQMP) || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Fatalf("got %v, want a CommandNotFound qmp error", err)
	}
	if err := q.SystemPowerdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Quit(ctx); err != nil {
		t.Fatalf("quit: %v", err)
	}
	f.mu.Lock()
	got := strings.Join(f.cmds, " ")
	f.mu.Unlock()
	want := "qmp_capabilities stop query-status cont query-status bogus system_powerdown quit"
	if got != want {
		t.Fatalf("got commands %q, want %q", got, want)
	}
}

func TestQMPDialNoServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := DialQMPRetry(ctx, filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("got no error dialing a missing socket")
	}
}

// TestQMPRealQEMU starts QEMU with a kernel that does nothing useful (the
// test only needs the monitor): pause, resume, quit.
func TestQMPRealQEMU(t *testing.T) {
	bin := testutil.RequireBinary(t, DefaultBinary)
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	// A PVH-less flat file makes microvm's firmware spin: enough for QMP.
	if err := os.WriteFile(kernel, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := VM{Accel: AccelTCG, CPUs: 1, MemoryMiB: 64, Kernel: kernel,
		Console: filepath.Join(dir, "console.log"), QMP: filepath.Join(dir, "qmp.sock")}
	p, err := Start(bin, vm, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := DialQMPRetry(ctx, vm.QMP)
	if err != nil {
		t.Fatalf("%v (qemu output: %s)", err, p.Output())
	}
	defer q.Close()
	if !Alive(p.Pid) {
		t.Fatalf("Alive(%d) = false for a running qemu", p.Pid)
	}
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := q.QueryStatus(ctx); err != nil || st.Status != "paused" {
		t.Fatalf("got %+v, %v; want paused", st, err)
	}
	if err := q.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := q.QueryStatus(ctx); err != nil || !st.Running {
		t.Fatalf("got %+v, %v; want running", st, err)
	}
	if err := q.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("qemu did not quit: %v", err)
		}
	}
	if Alive(p.Pid) {
		t.Fatal("qemu still alive after quit")
	}
}
