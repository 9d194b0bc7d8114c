package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/qemu"
)

// The fast tests of the manager's life cycle, over fakeHost: no QEMU, no
// root. boot_test.go and modes_test.go run the same paths on real QEMU.

// fakeSpec is a container-mode VM with a share and a disk vminit mounts.
func fakeSpec(name string) Spec {
	return Spec{Name: name, CPUs: 1, MemoryMiB: 256, RootDir: "/srv/" + name,
		Shares: []Share{{Dir: "/srv/share-" + name, Mountpoint: "/data"}},
		Disks:  []Disk{{Path: "/disks/" + name + ".raw", Mountpoint: "/var"}},
		Guest:  guest.Config{Entrypoint: []string{"/bin/sh"}},
	}
}

// startLines are the lines of a first start of fakeSpec(name) whose
// processes get pids first, first+1 (virtiofsds) and first+2 (QEMU).
func startLines(name string, first int, uid uint32) []string {
	return []string{
		"virtiofsd[" + itoa(first) + "] start /srv/" + name + " on ROOT/" + name + "/fs0.sock",
		"virtiofsd[" + itoa(first+1) + "] start /srv/share-" + name + " on ROOT/" + name + "/fs1.sock",
		"qemu[" + itoa(first+2) + "] start " + name + " uid=" + itoa(int(uid)) + " chroot=ROOT/" + name + "/chroot",
		"qmp ROOT/" + name + "/qmp.sock connect",
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRunStates: Run formats the blank disk, starts one virtiofsd per
// share, then QEMU as its own user in its chroot, and waits for QMP; the
// pids and the user are written for the next node run. Inspect, Pause and
// Resume go through QMP.
func TestRunStates(t *testing.T) {
	m, f := newFakeManager(t)
	ctx := ctxT(t)
	if err := m.Run(ctx, fakeSpec("vm1")); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "run", f.take(), append([]string{"mkfs /disks/vm1.raw label=zmount"}, startLines("vm1", 101, DefaultUIDBase)...))
	var st state
	if err := readJSON(filepath.Join(m.cfg.Root, "vm1", "state.json"), &st); err != nil {
		t.Fatal(err)
	}
	if st.QEMU != 103 || len(st.Virtiofsd) != 2 || st.Virtiofsd[0] != 101 || st.Virtiofsd[1] != 102 || st.UID != DefaultUIDBase {
		t.Fatalf("got state %+v, want qemu 103, virtiofsd [101 102], uid %d", st, DefaultUIDBase)
	}
	if err := m.Run(ctx, fakeSpec("vm1")); !errors.Is(err, ErrExists) {
		t.Fatalf("second run: got %v, want ErrExists", err)
	}
	// A second VM gets the next user; its disk is formatted already.
	f.sigs["/disks/vm2.raw"] = f.sigs["/disks/vm1.raw"]
	if err := m.Run(ctx, fakeSpec("vm2")); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "second vm", f.take(), startLines("vm2", 104, DefaultUIDBase+1))

	for _, step := range []struct {
		do     func() error
		status string
		lines  []string
	}{
		{func() error { return nil }, "running", nil},
		{func() error { return m.Pause(ctx, "vm1") }, "paused", []string{"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock stop"}},
		{func() error { return m.Resume(ctx, "vm1") }, "running", []string{"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock cont"}},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		info, err := m.Inspect(ctx, "vm1")
		if err != nil || info.Status != step.status || info.Pid != 103 || info.Console != filepath.Join(m.cfg.Root, "vm1", "console.log") {
			t.Fatalf("inspect: got %+v, %v; want pid 103 %s", info, err, step.status)
		}
		wantLines(t, "step", f.take(), append(step.lines, "qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock query-status"))
	}
	if got := m.List(); strings.Join(got, ",") != "vm1,vm2" {
		t.Fatalf("got list %v, want [vm1 vm2]", got)
	}
	for _, op := range []func() error{
		func() error { _, err := m.Inspect(ctx, "nope"); return err },
		func() error { return m.Pause(ctx, "nope") },
		func() error { return m.Delete(ctx, "nope") },
	} {
		if err := op(); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown vm: got %v, want ErrNotFound", err)
		}
	}
	if lines := f.take(); len(lines) != 0 {
		t.Errorf("unknown vm: got lines %v, want none", lines)
	}
}

// TestRunFails: a start that fails half-way stops what it started,
// removes the VM's directory and frees the name.
func TestRunFails(t *testing.T) {
	for _, tt := range []struct {
		name  string
		set   func(*fakeHost)
		want  string
		lines []string
	}{
		{
			name: "second virtiofsd", set: func(f *fakeHost) { f.failVirtiofsd = "/srv/share-vm1" },
			want: "not a directory",
			lines: []string{
				"virtiofsd[101] start /srv/vm1 on ROOT/vm1/fs0.sock",
				"virtiofsd start /srv/share-vm1: refused",
				"virtiofsd[101] kill",
			},
		},
		{
			name: "qemu", set: func(f *fakeHost) { f.failQEMU = true },
			want: "starting qemu",
			lines: []string{
				"virtiofsd[101] start /srv/vm1 on ROOT/vm1/fs0.sock",
				"virtiofsd[102] start /srv/share-vm1 on ROOT/vm1/fs1.sock",
				"qemu start vm1: refused",
				"virtiofsd[101] kill",
				"virtiofsd[102] kill",
			},
		},
		{
			name: "qmp never answers", set: func(f *fakeHost) { f.silentQMP = true },
			want: "fake output",
			lines: []string{
				"virtiofsd[101] start /srv/vm1 on ROOT/vm1/fs0.sock",
				"virtiofsd[102] start /srv/share-vm1 on ROOT/vm1/fs1.sock",
				"qemu[103] start vm1 uid=1073741824 chroot=ROOT/vm1/chroot",
				"qmp ROOT/vm1/qmp.sock wait: context deadline exceeded",
				"qemu[103] kill",
				"virtiofsd[101] kill",
				"virtiofsd[102] kill",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFakeManager(t)
			f.sigs["/disks/vm1.raw"] = fsBtrfs
			tt.set(f)
			ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
			defer cancel()
			err := m.Run(ctx, fakeSpec("vm1"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "running vm vm1") {
				t.Fatalf("got %v, want an error running vm1 with %q", err, tt.want)
			}
			wantLines(t, "failed run", f.take(), tt.lines)
			if _, err := os.Stat(filepath.Join(m.cfg.Root, "vm1")); !os.IsNotExist(err) {
				t.Errorf("vm dir left after a failed run: %v", err)
			}
			if got := m.List(); len(got) != 0 {
				t.Errorf("got list %v after a failed run, want none", got)
			}
			f.failVirtiofsd, f.failQEMU, f.silentQMP = "", false, false
			if err := m.Run(ctxT(t), fakeSpec("vm1")); err != nil {
				t.Fatalf("run after the failure: %v", err)
			}
			m.Delete(ctxT(t), "vm1")
		})
	}
}

// fsBtrfs is what blkid finds on a disk formatted before.
var fsBtrfs = blockdev.Signature{Type: "btrfs", Label: DiskLabel}

// TestDelete: ACPI power-down first; QEMU is killed only when it does
// not stop within StopTimeout; the virtiofsds are stopped and the
// directory removed. An adopted VM (no Process) is stopped by pid.
func TestDelete(t *testing.T) {
	for _, tt := range []struct {
		name            string
		adopted, ignore bool
		lines           []string
	}{
		{name: "powers off", lines: []string{
			"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock system_powerdown",
			"virtiofsd[101] kill", "virtiofsd[102] kill",
		}},
		{name: "ignores power-down", ignore: true, lines: []string{
			"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock system_powerdown",
			"qemu[103] kill", "virtiofsd[101] kill", "virtiofsd[102] kill",
		}},
		{name: "adopted powers off", adopted: true, lines: []string{
			"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock system_powerdown",
			"virtiofsd[101] kill-pid", "virtiofsd[102] kill-pid",
		}},
		{name: "adopted ignores power-down", adopted: true, ignore: true, lines: []string{
			"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock system_powerdown",
			"qemu[103] kill-pid", "virtiofsd[101] kill-pid", "virtiofsd[102] kill-pid",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFakeManager(t)
			f.sigs["/disks/vm1.raw"] = fsBtrfs
			if err := m.Run(ctxT(t), fakeSpec("vm1")); err != nil {
				t.Fatal(err)
			}
			if tt.adopted {
				m = newManagerOver(t, m.cfg.Root, f)
				if _, err := m.Adopt(ctxT(t)); err != nil {
					t.Fatal(err)
				}
			}
			f.take()
			f.ignorePowerdown = tt.ignore
			if err := m.Delete(ctxT(t), "vm1"); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "delete", f.take(), tt.lines)
			if _, err := os.Stat(filepath.Join(m.cfg.Root, "vm1")); !os.IsNotExist(err) {
				t.Errorf("vm dir left after delete: %v", err)
			}
			for pid, p := range f.procs {
				if p.alive {
					t.Errorf("pid %d (%s) alive after delete", pid, p.kind)
				}
			}
			if _, err := m.Inspect(ctxT(t), "vm1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("inspect after delete: got %v, want ErrNotFound", err)
			}
		})
	}
}

// TestAdopt: after a node restart a VM whose QEMU still runs and answers
// QMP is taken back without a reboot; the leftovers of any other are
// cleaned up, and a pid the kernel gave to another program since is
// never killed.
func TestAdopt(t *testing.T) {
	m1, f := newFakeManager(t)
	ctx := ctxT(t)
	names := []string{"alive", "crashed", "noqmp", "recycled"}
	pids := map[string]state{}
	for _, n := range names {
		f.sigs["/disks/"+n+".raw"] = fsBtrfs
		if err := m1.Run(ctx, fakeSpec(n)); err != nil {
			t.Fatal(err)
		}
		var st state
		if err := readJSON(filepath.Join(m1.cfg.Root, n, "state.json"), &st); err != nil {
			t.Fatal(err)
		}
		pids[n] = st
	}
	// A directory from an interrupted start: no state, and a QEMU started
	// but not recorded before the node died (it holds the VM's tap).
	if err := os.MkdirAll(filepath.Join(m1.cfg.Root, "half"), 0o700); err != nil {
		t.Fatal(err)
	}
	unrecorded := f.add("qemu", filepath.Join(m1.cfg.Root, "half")).pid
	f.take()
	// While the node was down: one QEMU crashed, one stopped answering
	// QMP, and one crashed and both its pid and a virtiofsd's went to
	// other programs.
	f.exit(pids["crashed"].QEMU)
	f.procs[pids["noqmp"].QEMU].qmp = "/elsewhere"
	f.recycle(pids["recycled"].QEMU)
	f.recycle(pids["recycled"].Virtiofsd[0])

	m2 := newManagerOver(t, m1.cfg.Root, f)
	adopted, err := m2.Adopt(ctx)
	if err != nil || strings.Join(adopted, ",") != "alive" {
		t.Fatalf("adopt: got %v, %v; want [alive]", adopted, err)
	}
	wantLines(t, "adopt", f.take(), []string{
		"qmp ROOT/alive/qmp.sock connect",
		// crashed: QEMU gone, its virtiofsds stopped by pid.
		"virtiofsd[104] kill-pid",
		"virtiofsd[105] kill-pid",
		// half: the unrecorded QEMU, found by the directory it names.
		fmt.Sprintf("qemu[%d] kill-pid", unrecorded),
		// noqmp: alive but not answering.
		"qmp ROOT/noqmp/qmp.sock connect: refused",
		"qemu[109] kill-pid",
		"virtiofsd[107] kill-pid",
		"virtiofsd[108] kill-pid",
		// recycled: only the virtiofsd that is still its own.
		"virtiofsd[111] kill-pid",
	})
	for _, pid := range []int{pids["recycled"].QEMU, pids["recycled"].Virtiofsd[0]} {
		if !f.Live(pid) {
			t.Errorf("pid %d of another program was killed", pid)
		}
	}
	for _, n := range []string{"crashed", "half", "noqmp", "recycled"} {
		if _, err := os.Stat(filepath.Join(m1.cfg.Root, n)); !os.IsNotExist(err) {
			t.Errorf("%s: dir left after adoption: %v", n, err)
		}
	}
	info, err := m2.Inspect(ctx, "alive")
	if err != nil || info.Pid != pids["alive"].QEMU || info.Status != "running" {
		t.Fatalf("adopted: got %+v, %v; want pid %d running", info, err, pids["alive"].QEMU)
	}
	// The adopted VM keeps its user: the next VM gets another.
	f.sigs["/disks/new.raw"] = fsBtrfs
	if err := m2.Run(ctx, fakeSpec("new")); err != nil {
		t.Fatal(err)
	}
	var st state
	if err := readJSON(filepath.Join(m1.cfg.Root, "new", "state.json"), &st); err != nil || st.UID == pids["alive"].UID {
		t.Fatalf("new vm: got uid %d, %v; want another than the adopted vm's %d", st.UID, err, pids["alive"].UID)
	}
}

// TestCheck: a VM whose QEMU died, one of whose virtiofsd died, or whose
// QEMU stopped on an internal error is stopped and started again (its
// formatted disk is not formatted again); a healthy one is only asked
// for its state.
func TestCheck(t *testing.T) {
	restart := []string{
		"virtiofsd[104] start /srv/vm1 on ROOT/vm1/fs0.sock",
		"virtiofsd[105] start /srv/share-vm1 on ROOT/vm1/fs1.sock",
		"qemu[106] start vm1 uid=1073741824 chroot=ROOT/vm1/chroot",
		"qmp ROOT/vm1/qmp.sock connect",
	}
	for _, tt := range []struct {
		name    string
		crash   func(f *fakeHost)
		restart bool
		lines   []string
	}{
		{name: "healthy", crash: func(*fakeHost) {}, lines: []string{
			"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock query-status",
		}},
		{name: "qemu died", restart: true, crash: func(f *fakeHost) { f.exit(103) }, lines: append([]string{
			"virtiofsd[101] kill", "virtiofsd[102] kill",
		}, restart...)},
		{name: "virtiofsd died", restart: true, crash: func(f *fakeHost) { f.exit(102) }, lines: append([]string{
			"qemu[103] kill", "virtiofsd[101] kill",
		}, restart...)},
		{name: "internal error", restart: true, crash: func(f *fakeHost) { f.setStatus(103, qemu.StatusInternalError) }, lines: append([]string{
			"qmp ROOT/vm1/qmp.sock connect", "qmp ROOT/vm1/qmp.sock query-status",
			"qemu[103] kill", "virtiofsd[101] kill", "virtiofsd[102] kill",
		}, restart...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFakeManager(t)
			if err := m.Run(ctxT(t), fakeSpec("vm1")); err != nil {
				t.Fatal(err)
			}
			f.take()
			tt.crash(f)
			ev := m.Check(ctxT(t), time.Now())
			wantLines(t, "check", f.take(), tt.lines)
			if tt.restart && (len(ev) != 1 || ev[0].Name != "vm1" || !ev[0].Restarted || ev[0].Err != nil) {
				t.Fatalf("got events %+v, want vm1 restarted", ev)
			}
			if !tt.restart && len(ev) != 0 {
				t.Fatalf("got events %+v, want none", ev)
			}
			if info, err := m.Inspect(ctxT(t), "vm1"); err != nil || info.Status != "running" {
				t.Fatalf("after check: got %+v, %v; want running", info, err)
			}
			f.take()
			m.Delete(ctxT(t), "vm1")
		})
	}
}

// TestCheckDecommission: more than MaxCrashes crashes within CrashWindow
// give the VM up (stopped, directory removed, ErrDecommissioned); crashes
// further apart restart it every time.
func TestCheckDecommission(t *testing.T) {
	for _, tt := range []struct {
		name  string
		every time.Duration
		gone  bool
	}{
		{name: "crash loop", every: time.Second, gone: true},
		{name: "crashes spread out", every: CrashWindow},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFakeManager(t)
			if err := m.Run(ctxT(t), fakeSpec("vm1")); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			var ev []Event
			for i := 0; i <= MaxCrashes; i++ {
				info, err := m.Inspect(ctxT(t), "vm1")
				if err != nil {
					t.Fatalf("crash %d: %v", i+1, err)
				}
				f.exit(info.Pid)
				f.take()
				now = now.Add(tt.every)
				ev = m.Check(ctxT(t), now)
				if len(ev) != 1 {
					t.Fatalf("crash %d: got events %+v, want one", i+1, ev)
				}
			}
			last := f.take()
			if !tt.gone {
				if !ev[0].Restarted {
					t.Fatalf("got event %+v, want a restart", ev[0])
				}
				m.Delete(ctxT(t), "vm1")
				return
			}
			if ev[0].Restarted || !errors.Is(ev[0].Err, ErrDecommissioned) {
				t.Fatalf("got event %+v, want ErrDecommissioned", ev[0])
			}
			wantLines(t, "decommission", last, []string{"virtiofsd[113] kill", "virtiofsd[114] kill"})
			if got := m.List(); len(got) != 0 {
				t.Errorf("got list %v, want none", got)
			}
			if _, err := os.Stat(filepath.Join(m.cfg.Root, "vm1")); !os.IsNotExist(err) {
				t.Errorf("vm dir left after decommission: %v", err)
			}
		})
	}
}
