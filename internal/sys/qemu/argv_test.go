package qemu

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func goldenVMs() map[string]VM {
	return map[string]VM{
		"minimal": {
			Accel: AccelTCG, CPUs: 1, MemoryMiB: 256,
			Kernel: "/k/vmlinux", Console: "/run/vm/console.log", QMP: "/run/vm/qmp.sock",
			Cmdline: "quiet",
		},
		"container": {
			Name: "vm1", Accel: AccelTCG, CPUs: 2, MemoryMiB: 512,
			Kernel: "/k/vmlinux", Initrd: "/k/initrd.cpio",
			Cmdline: "root=vroot rootfstype=virtiofs panic=1",
			Disks:   []Disk{{ID: "d0", Path: "/vd/data.raw"}, {ID: "d1", Path: "/vd/ro.raw", ReadOnly: true}},
			NICs:    []NIC{{ID: "n0", Tap: "t-abc", MAC: "52:54:00:12:34:56"}},
			FS:      []FS{{ID: "fs0", Tag: "vroot", Socket: "/run/vm/fs0.sock"}, {ID: "fs1", Tag: "vol1", Socket: "/run/vm/fs1.sock"}},
			Console: "/run/vm/console.log", QMP: "/run/vm/qmp.sock",
			RunAs: User{UID: 1073741824, GID: 1073741824}, Chroot: "/run/vm/chroot",
		},
		"disk": {
			Name: "full", Machine: MachinePC, Accel: AccelTCG, CPUs: 2, MemoryMiB: 512,
			Disks:   []Disk{{ID: "d0", Path: "/vd/image.raw"}, {ID: "d1", Path: "/vd/data.raw"}},
			NICs:    []NIC{{ID: "n0", Tap: "t-abc", MAC: "52:54:00:12:34:56"}},
			FS:      []FS{{ID: "fs1", Tag: "vol1", Socket: "/run/vm/fs1.sock"}},
			Console: "/run/vm/console.log", QMP: "/run/vm/qmp.sock",
		},
		"kernel": {
			Name: "vm2", Accel: AccelTCG, CPUs: 1, MemoryMiB: 256,
			Kernel: "/flist/boot/vmlinuz", Initrd: "/flist/boot/initrd.img",
			Cmdline: "panic=-1 root=vroot rootfstype=virtiofs rw init=/sbin/init",
			FS:      []FS{{ID: "fs0", Tag: "vroot", Socket: "/run/vm/fs0.sock"}},
			Console: "/run/vm/console.log", QMP: "/run/vm/qmp.sock",
			RunAs: User{UID: 1073741825, GID: 1073741825}, Chroot: "/run/vm/chroot",
		},
		"kvm-9p": {
			Accel: AccelKVM, CPUs: 4, MemoryMiB: 1024,
			Kernel: "/k/vmlinux", Initrd: "/k/initrd.cpio", Cmdline: "console=hvc0 root=vroot rootfstype=9p",
			P9:      []P9{{ID: "p0", Tag: "vroot", Path: "/srv/root"}, {ID: "p1", Tag: "ro", Path: "/srv/ro", ReadOnly: true}},
			Console: "/run/vm/console.log", QMP: "/run/vm/qmp.sock",
		},
	}
}

func TestArgvGolden(t *testing.T) {
	for name, vm := range goldenVMs() {
		t.Run(name, func(t *testing.T) {
			if err := vm.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			got := strings.Join(Argv(vm), "\n") + "\n"
			testutil.Golden(t, filepath.Join("testdata", name+".argv"), []byte(got))
			if again := strings.Join(Argv(vm), "\n") + "\n"; again != got {
				t.Error("Argv is not deterministic")
			}
			// Every VM runs under QEMU's seccomp sandbox; one with a
			// user switches to it inside an empty chroot.
			sandbox := "-sandbox\n" + Sandbox + "\n"
			if vm.RunAs != (User{}) {
				sandbox = "-sandbox\n" + SandboxRunAs + "\n-runas\n" + fmt.Sprintf("%d:%d", vm.RunAs.UID, vm.RunAs.GID) + "\n-chroot\n" + vm.Chroot + "\n"
			}
			if !strings.Contains(got, sandbox) {
				t.Errorf("argv lacks %q", sandbox)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := goldenVMs()["container"]
	tests := []struct {
		name string
		mod  func(v *VM)
		want string
	}{
		{"ok", func(v *VM) {}, ""},
		{"accel", func(v *VM) { v.Accel = "xen" }, "accel"},
		{"cpus", func(v *VM) { v.CPUs = 0 }, "cpus"},
		{"memory", func(v *VM) { v.MemoryMiB = 1 }, "memory"},
		{"relative kernel", func(v *VM) { v.Kernel = "vmlinux" }, "absolute"},
		{"comma in path", func(v *VM) { v.Disks = []Disk{{ID: "d0", Path: "/a,b"}} }, "commas"},
		{"duplicate id", func(v *VM) { v.NICs = []NIC{{ID: "d0", Tap: "t"}} }, "used twice"},
		{"bad tag", func(v *VM) { v.FS[0].Tag = "a,b" }, "virtiofs tag"},
		{"no console", func(v *VM) { v.Console = "" }, "console"},
		{"newline cmdline", func(v *VM) { v.Cmdline = "a\nb" }, "command line"},
		{"bad machine", func(v *VM) { v.Machine = "q35" }, "machine"},
		{"pc with kernel", func(v *VM) { v.Machine = MachinePC }, "must be empty"},
		{"pc without disk", func(v *VM) {
			v.Machine, v.Kernel, v.Initrd, v.Cmdline, v.Disks = MachinePC, "", "", "", nil
		}, "no disk"},
		{"pc ok", func(v *VM) { v.Machine, v.Kernel, v.Initrd, v.Cmdline = MachinePC, "", "", "" }, ""},
		{"run as root", func(v *VM) { v.RunAs = User{UID: 0, GID: 5} }, "unprivileged"},
		{"run as root group", func(v *VM) { v.RunAs = User{UID: 5, GID: 0} }, "unprivileged"},
		{"run as -1", func(v *VM) { v.RunAs = User{UID: ^uint32(0), GID: 5} }, "unprivileged"},
		{"run as without chroot", func(v *VM) { v.Chroot = "" }, "chroot: missing"},
		{"relative chroot", func(v *VM) { v.Chroot = "chroot" }, "absolute"},
		{"chroot without user", func(v *VM) { v.RunAs = User{} }, "without a user"},
		{"root without chroot", func(v *VM) { v.RunAs, v.Chroot = User{}, "" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ok
			v.Disks = append([]Disk(nil), ok.Disks...)
			v.FS = append([]FS(nil), ok.FS...)
			tt.mod(&v)
			err := v.Validate()
			testutil.WantError(t, err, tt.want)
		})
	}
}

func TestGuestCmdline(t *testing.T) {
	tests := []struct{ accel, in, want string }{
		{AccelTCG, "quiet", "console=ttyS0 quiet " + TSCEarlyKHz},
		{AccelKVM, "quiet", "console=ttyS0 quiet"},
		{AccelTCG, "console=hvc0 tsc_early_khz=1", "console=hvc0 tsc_early_khz=1"},
		{AccelTCG, "init=/sbin/init -- single x", "console=ttyS0 init=/sbin/init " + TSCEarlyKHz + " -- single x"},
		{AccelTCG, "a -- console=x", "console=ttyS0 a " + TSCEarlyKHz + " -- console=x"},
	}
	for _, tt := range tests {
		if got := GuestCmdline(tt.accel, tt.in); got != tt.want {
			t.Errorf("GuestCmdline(%s, %q): got %q, want %q", tt.accel, tt.in, got, tt.want)
		}
	}
}

// TestVirtiofsdArgv: virtiofsd sandboxes itself explicitly and maps the
// guest's xattrs into user.virtiofs.*; it never passes them through
// (-o xattr).
func TestVirtiofsdArgv(t *testing.T) {
	got := strings.Join(VirtiofsdArgv("/run/vm/fs0.sock", "/mnt/root"), " ")
	want := "--socket-path=/run/vm/fs0.sock -o source=/mnt/root -o sandbox=namespace -o cache=auto " +
		"-o xattrmap=:prefix:all::user.virtiofs.::bad:all::: -o log_level=warn"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
