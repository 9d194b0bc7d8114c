package image

import "testing"

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
	got, err := parseLdd(out)
	if err != nil || len(got) != 2 || got[0] != "/lib/x86_64-linux-gnu/libz.so.1" || got[1] != "/lib64/ld-linux-x86-64.so.2" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := parseLdd("\tlibfoo.so => not found\n"); err == nil {
		t.Fatal("a missing library was accepted")
	}
	if got := usrPath("/lib64/ld-linux-x86-64.so.2"); got != "/usr/lib64/ld-linux-x86-64.so.2" {
		t.Fatalf("usrPath: %s", got)
	}
}

func TestIsShell(t *testing.T) {
	for p, want := range map[string]bool{"/bin/sh": true, "/usr/bin/busybox": true, "/usr/sbin/sshd": true, "/init": false, "/usr/bin/btrfs": false} {
		if IsShell(p) != want {
			t.Errorf("IsShell(%s) = %v", p, !want)
		}
	}
}
