// Package qemu runs VMs under QEMU: micro-VMs (-M microvm, a PVH vmlinux
// or a bzImage, virtio-mmio devices) and full VMs booting their first disk
// through SeaBIOS (-M pc, virtio-pci devices). It holds the ordered argv
// of a VM from one pure function (Argv), the process started with its pid
// kept (optionally inside a network namespace), and a QMP client for
// status, pause, resume, power-down and quit. internal/node/vm uses it; it
// decides no policy.
package qemu

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// TSCEarlyKHz is added to the guest command line under tcg: without it
// about one boot in twenty hangs calibrating the TSC.
const TSCEarlyKHz = "tsc_early_khz=2600000"

// Sandbox is QEMU's seccomp filter (-sandbox), on for every VM: no
// obsolete system calls, no fork or exec, no scheduler or CPU-affinity
// changes, and no set*uid/set*gid. A VM with RunAs keeps set*uid/set*gid
// (SandboxRunAs): QEMU's own switch to that user happens after the filter
// is in place (with them denied, QEMU 7.2 dies of SIGSYS at the switch);
// once switched it holds no capability to regain, and exec, the only way
// to a setuid program, stays denied.
const (
	Sandbox      = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
	SandboxRunAs = "on,obsolete=deny,spawn=deny,resourcecontrol=deny"
)

// User is a numeric user and group (no name lookup).
type User struct {
	UID, GID uint32
}

// Machines.
const (
	// MachineMicrovm boots Kernel directly (qboot firmware: a PVH vmlinux
	// or a bzImage), virtio-mmio devices. The default.
	MachineMicrovm = "microvm"
	// MachinePC boots the first disk with its own boot loader through
	// SeaBIOS (i440fx), virtio-pci devices; no Kernel.
	MachinePC = "pc"
)

// Disk is a raw image attached as virtio-blk (its ID is also the serial
// the guest reads in /sys/block/vdX/serial).
type Disk struct {
	ID       string // drive id and serial, unique in the VM
	Path     string // absolute
	ReadOnly bool
}

// NIC is a tap attached as virtio-net-device.
type NIC struct {
	ID  string // netdev id, unique in the VM
	Tap string // existing tap device name
	MAC string // aa:bb:cc:dd:ee:ff
}

// FS is a directory shared over virtiofs: QEMU connects to the vhost-user
// socket of a virtiofsd serving it.
type FS struct {
	ID     string // chardev id, unique in the VM
	Tag    string // mount tag seen by the guest
	Socket string // absolute path of virtiofsd's socket
}

// P9 is a directory shared over 9p (virtio-9p-device).
type P9 struct {
	ID       string
	Tag      string
	Path     string // absolute
	ReadOnly bool
}

// VM is everything Argv needs.
type VM struct {
	Name string
	// Machine is MachineMicrovm ("" too) or MachinePC.
	Machine   string
	Accel     string // AccelKVM or AccelTCG
	CPUs      int
	MemoryMiB int
	// Kernel is the absolute path of an uncompressed vmlinux (PVH) or a
	// bzImage; microvm only.
	Kernel  string
	Initrd  string // absolute, optional; microvm only
	Cmdline string // microvm only
	Disks   []Disk
	NICs    []NIC
	FS      []FS
	P9      []P9
	// Console is the file the serial console is written to (absolute).
	Console string
	// QMP is the path of the QMP unix socket QEMU listens on (absolute).
	QMP string
	// NetNS is the network namespace QEMU is started in ("" = the
	// caller's), where the taps of NICs live. Not part of the argv.
	NetNS string
	// RunAs, unless zero, is the user QEMU switches to once it opened its
	// files, taps and sockets, before the guest runs (-runas uid:gid):
	// no root, no capabilities left. Chroot (absolute; required with
	// RunAs) is the directory QEMU chroots into just before, an empty one
	// of the node's: nothing of the host is reachable by path afterwards.
	RunAs  User
	Chroot string
}

func (v *VM) pc() bool { return v.Machine == MachinePC }

// Validate reports the first problem that would make Argv produce a VM
// QEMU refuses or that misbehaves: relative paths, missing fields,
// duplicate ids, separators inside option values.
func (v *VM) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if v.Accel != AccelKVM && v.Accel != AccelTCG {
		bad("accel %q: want %s or %s", v.Accel, AccelKVM, AccelTCG)
	}
	if v.CPUs < 1 || v.CPUs > 255 {
		bad("cpus %d: want 1-255", v.CPUs)
	}
	if v.MemoryMiB < 64 {
		bad("memory %d MiB: want at least 64", v.MemoryMiB)
	}
	abs := func(what, p string, required bool) {
		if p == "" {
			if required {
				bad("%s: missing", what)
			}
			return
		}
		if !filepath.IsAbs(p) {
			bad("%s %q: not an absolute path", what, p)
		}
		if strings.ContainsAny(p, ",\n") {
			bad("%s %q: commas and newlines are not allowed", what, p)
		}
	}
	switch v.Machine {
	case "", MachineMicrovm:
		abs("kernel", v.Kernel, true)
		abs("initrd", v.Initrd, false)
	case MachinePC:
		if v.Kernel != "" || v.Initrd != "" || v.Cmdline != "" {
			bad("machine pc boots its first disk: kernel, initrd and command line must be empty")
		}
		if len(v.Disks) == 0 {
			bad("machine pc: no disk to boot")
		}
		if len(v.P9) > 0 {
			bad("machine pc: 9p shares are not supported")
		}
	default:
		bad("machine %q: want %s or %s", v.Machine, MachineMicrovm, MachinePC)
	}
	if v.RunAs != (User{}) {
		if v.RunAs.UID == 0 || v.RunAs.GID == 0 || v.RunAs.UID == ^uint32(0) || v.RunAs.GID == ^uint32(0) {
			bad("run as %d:%d: want an unprivileged user and group", v.RunAs.UID, v.RunAs.GID)
		}
		abs("chroot", v.Chroot, true)
	} else if v.Chroot != "" {
		bad("chroot %q without a user to run as", v.Chroot)
	}
	abs("console", v.Console, true)
	abs("qmp socket", v.QMP, true)
	if strings.ContainsAny(v.Cmdline, "\n\x00") {
		bad("kernel command line: newlines are not allowed")
	}
	ids := map[string]bool{}
	id := func(kind, s string) {
		if s == "" || strings.ContainsAny(s, ",= \n") {
			bad("%s id %q: invalid", kind, s)
		}
		if ids[s] {
			bad("%s id %q: used twice", kind, s)
		}
		ids[s] = true
	}
	plain := func(what, s string) {
		if s == "" || strings.ContainsAny(s, ",= \n") {
			bad("%s %q: invalid", what, s)
		}
	}
	for _, d := range v.Disks {
		id("disk", d.ID)
		abs("disk", d.Path, true)
	}
	for _, n := range v.NICs {
		id("nic", n.ID)
		plain("tap", n.Tap)
		if n.MAC != "" {
			plain("mac", n.MAC)
		}
	}
	for _, f := range v.FS {
		id("virtiofs", f.ID)
		plain("virtiofs tag", f.Tag)
		abs("virtiofs socket", f.Socket, true)
	}
	for _, p := range v.P9 {
		id("9p", p.ID)
		plain("9p tag", p.Tag)
		abs("9p path", p.Path, true)
	}
	return errors.Join(errs...)
}

// Argv is the ordered QEMU argument list of v (without the binary). It is
// pure: the same VM always gives the same slice. Call Validate first.
func Argv(v VM) []string {
	machine := "microvm,rtc=on"
	// Device models: virtio-mmio on microvm, virtio-pci on pc.
	blk, net, fs := "virtio-blk-device", "virtio-net-device", "vhost-user-fs-device"
	if v.pc() {
		machine = "pc"
		blk, net, fs = "virtio-blk-pci", "virtio-net-pci", "vhost-user-fs-pci"
	}
	if len(v.FS) > 0 {
		// vhost-user needs guest RAM in shared memory.
		machine += ",memory-backend=mem"
	}
	cpu := "max"
	if v.Accel == AccelKVM {
		cpu = "host"
	}
	mem := strconv.Itoa(v.MemoryMiB)
	a := []string{}
	if v.Name != "" {
		a = append(a, "-name", v.Name)
	}
	a = append(a,
		"-M", machine,
		"-accel", v.Accel,
		"-cpu", cpu,
		"-smp", strconv.Itoa(v.CPUs),
		"-m", mem+"M",
	)
	if len(v.FS) > 0 {
		a = append(a, "-object", "memory-backend-memfd,id=mem,size="+mem+"M,share=on")
		if !v.pc() {
			// vhost-user-fs-device is virtio 1.0 only.
			a = append(a, "-global", "virtio-mmio.force-legacy=false")
		}
	}
	a = append(a,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
	)
	if v.RunAs != (User{}) {
		a = append(a, "-sandbox", SandboxRunAs,
			"-runas", strconv.FormatUint(uint64(v.RunAs.UID), 10)+":"+strconv.FormatUint(uint64(v.RunAs.GID), 10),
			"-chroot", v.Chroot)
	} else {
		a = append(a, "-sandbox", Sandbox)
	}
	a = append(a,
		// append=on: the console log may be truncated from the front
		// (rotation) while QEMU keeps writing at its end.
		"-chardev", "file,id=console,path="+v.Console+",append=on",
		"-serial", "chardev:console",
		"-qmp", "unix:"+v.QMP+",server=on,wait=off",
	)
	if !v.pc() {
		a = append(a, "-kernel", v.Kernel)
		if v.Initrd != "" {
			a = append(a, "-initrd", v.Initrd)
		}
		a = append(a, "-append", GuestCmdline(v.Accel, v.Cmdline))
	}
	for i, d := range v.Disks {
		drive := "id=" + d.ID + ",file=" + d.Path + ",format=raw,if=none"
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		dev := blk + ",drive=" + d.ID + ",serial=" + d.ID
		if v.pc() && i == 0 {
			dev += ",bootindex=0"
		}
		a = append(a, "-drive", drive, "-device", dev)
	}
	for _, n := range v.NICs {
		dev := net + ",netdev=" + n.ID
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		a = append(a, "-netdev", "tap,id="+n.ID+",ifname="+n.Tap+",script=no,downscript=no", "-device", dev)
	}
	for _, f := range v.FS {
		a = append(a,
			"-chardev", "socket,id="+f.ID+",path="+f.Socket,
			"-device", fs+",chardev="+f.ID+",tag="+f.Tag,
		)
	}
	for _, p := range v.P9 {
		fsdev := "local,id=" + p.ID + ",path=" + p.Path + ",security_model=none"
		if p.ReadOnly {
			fsdev += ",readonly=on"
		}
		a = append(a, "-fsdev", fsdev, "-device", "virtio-9p-device,fsdev="+p.ID+",mount_tag="+p.Tag)
	}
	return a
}

// GuestCmdline is the kernel command line QEMU passes: cmdline with the
// console on the serial port and, under tcg, TSCEarlyKHz. Both go before
// a "--" (what follows it are init's arguments).
func GuestCmdline(accel, cmdline string) string {
	fields := strings.Fields(cmdline)
	var initArgs []string
	for i, f := range fields {
		if f == "--" {
			fields, initArgs = fields[:i:i], fields[i:]
			break
		}
	}
	has := func(prefix string) bool {
		for _, f := range fields {
			if strings.HasPrefix(f, prefix) {
				return true
			}
		}
		return false
	}
	if !has("console=") {
		fields = append([]string{"console=ttyS0"}, fields...)
	}
	if accel == AccelTCG && !has("tsc_early_khz=") {
		fields = append(fields, TSCEarlyKHz)
	}
	return strings.Join(append(fields, initArgs...), " ")
}
