// Package vmtest builds guest images for tests of VMs (the vm package's
// and the end-to-end ones): a small busybox initramfs whose /init is a
// script, and a bootable raw disk image (MBR, syslinux, one FAT partition
// with a kernel and an initrd) for full-VM mode. It is imported by tests
// only.
package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/cpio"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// MarkerInitramfs is a tiny busybox initramfs; script is its /init.
// Modules (with their dependencies, from modulesDir) are added under
// /lib/modules and listed in /modules in load order.
func MarkerInitramfs(t testing.TB, modulesDir, script string, modules []string) string {
	t.Helper()
	bb := testutil.RequireBinary(t, "busybox")
	a := cpio.NewArchive()
	errs := []error{a.HostFile("/bin/busybox", 0o755, bb), a.File("/init", 0o755, []byte(script))}
	for _, d := range []string{"/proc", "/sys", "/dev", "/newroot"} {
		errs = append(errs, a.Dir(d, 0o755))
	}
	if len(modules) > 0 {
		ix, err := kernel.ReadIndex(modulesDir)
		if err != nil {
			t.Fatal(err)
		}
		order, missing := ix.Resolve(modules)
		if len(missing) > 0 {
			t.Fatalf("modules missing: %v", missing)
		}
		var list strings.Builder
		for _, m := range order {
			p := "/lib/modules/" + m.Path
			errs = append(errs, a.HostFile(p, 0o644, filepath.Join(modulesDir, m.Path)))
			list.WriteString(p + "\n")
		}
		errs = append(errs, a.File("/modules", 0o644, []byte(list.String())))
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "initrd.cpio")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := a.WriteTo(f, os.ReadFile); err != nil {
		t.Fatal(err)
	}
	return out
}

// SparseFile makes p a sparse file of size bytes.
func SparseFile(t testing.TB, p string, size int64) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

// BootableImage builds a 48 MiB raw disk image at out: an MBR (syslinux)
// with one FAT partition holding bzImage, initrd and syslinux.cfg,
// installed with syslinux --offset (mtools: no loop device, no mount).
func BootableImage(t testing.TB, bzImage, initrd, out string) {
	t.Helper()
	for _, b := range []string{"sfdisk", "mkfs.fat", "mcopy", "syslinux"} {
		testutil.RequireBinary(t, b)
	}
	mbr := "/usr/lib/syslinux/mbr/mbr.bin"
	testutil.RequireFile(t, mbr)
	const size, start = 48 << 20, 1 << 20
	SparseFile(t, out, size)
	run := func(stdin string, argv ...string) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, b)
		}
	}
	run("label: dos\nstart=2048, type=c, bootable\n", "sfdisk", "-q", out)
	run("", "dd", "if="+mbr, "of="+out, "bs=440", "count=1", "conv=notrunc", "status=none")
	run("", "mkfs.fat", "-n", "ZOSBOOT", "--offset", "2048", out, fmt.Sprint((size-start)/1024))
	cfg := "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n" +
		"  APPEND console=ttyS0 quiet panic=-1 " + qemu.TSCEarlyKHz + "\n"
	cfgFile := filepath.Join(t.TempDir(), "syslinux.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	part := fmt.Sprintf("%s@@%d", out, start)
	run("", "mcopy", "-i", part, bzImage, "::/vmlinuz")
	run("", "mcopy", "-i", part, initrd, "::/initrd.img")
	run("", "mcopy", "-i", part, cfgFile, "::/syslinux.cfg")
	run("", "syslinux", "--offset", fmt.Sprint(start), "--install", out)
}
