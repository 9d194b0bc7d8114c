package cpio

import (
	"bytes"
	"os"
	"testing"
)

func sample() *Archive {
	a := NewArchive()
	a.File("/usr/bin/tool", 0o755, []byte("binary"))
	a.Symlink("/bin", "usr/bin")
	a.CharDev("/dev/console", 0o600, 5, 1)
	a.File("/etc/zos/cmdline", 0o644, []byte("farm=1\n"))
	a.Dir("/tmp", 0o1777)
	return a
}

func TestArchiveRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteTo(&buf, os.ReadFile); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Fatalf("archive length %d is not 4-aligned", buf.Len())
	}
	ents, err := ReadArchive(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Path)
	}
	want := []string{"/bin", "/dev", "/dev/console", "/etc", "/etc/zos", "/etc/zos/cmdline", "/tmp", "/usr", "/usr/bin", "/usr/bin/tool"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	for _, e := range ents {
		switch e.Path {
		case "/bin":
			if e.Mode != modeSymlink|0o777 || string(e.Data) != "usr/bin" {
				t.Errorf("/bin: %o %q", e.Mode, e.Data)
			}
		case "/usr/bin/tool":
			if e.Mode != modeFile|0o755 || string(e.Data) != "binary" {
				t.Errorf("tool: %o %q", e.Mode, e.Data)
			}
		case "/tmp":
			if e.Mode != modeDir|0o1777 {
				t.Errorf("/tmp: %o", e.Mode)
			}
		}
	}
}

func TestArchiveDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	sample().WriteTo(&a, os.ReadFile)
	// Same content added in another order.
	x := NewArchive()
	x.Dir("/tmp", 0o1777)
	x.File("/etc/zos/cmdline", 0o644, []byte("farm=1\n"))
	x.CharDev("/dev/console", 0o600, 5, 1)
	x.Symlink("/bin", "usr/bin")
	x.File("/usr/bin/tool", 0o755, []byte("binary"))
	x.WriteTo(&b, os.ReadFile)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same entries in another order gave other bytes")
	}
}

func TestReadArchiveBad(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty": nil, "magic": bytes.Repeat([]byte("x"), 200),
		"truncated": []byte("070701000000010000816D0000000000000000000000010000000000000100"),
	} {
		if _, err := ReadArchive(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: read", name)
		}
	}
}

func FuzzReadArchive(f *testing.F) {
	var buf bytes.Buffer
	sample().WriteTo(&buf, os.ReadFile)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) { ReadArchive(bytes.NewReader(b)) })
}
