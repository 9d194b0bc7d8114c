package netcfg

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestRtentryLayout(t *testing.T) {
	// struct rtentry is 120 bytes on x86_64 with rt_dev at offset 88.
	var rt rtentry
	if s, off := unsafe.Sizeof(rt), unsafe.Offsetof(rt.dev); s != 120 || off != 88 {
		t.Fatalf("got size %d, dev at %d; want 120 and 88", s, off)
	}
}

func TestLinks(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, carrier string, device bool) {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "address"), []byte("52:54:00:12:34:56\n"), 0o644)
		os.WriteFile(filepath.Join(d, "carrier"), []byte(carrier+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "operstate"), []byte("up\n"), 0o644)
		if device {
			os.MkdirAll(filepath.Join(d, "device"), 0o755)
		}
	}
	mk("lo", "1", false)
	mk("eth0", "1", true)
	mk("eth1", "0", true)
	got, err := Links(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "eth0" || !got[0].Physical || !got[0].Carrier || got[1].Carrier || got[2].Physical {
		t.Fatalf("got %+v", got)
	}
}
