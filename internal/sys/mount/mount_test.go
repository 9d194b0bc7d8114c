package mount

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMountPoint(t *testing.T) {
	tests := []struct {
		line, want string
		ok         bool
	}{
		{"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw", "/mnt/parent", true},
		{`36 35 0:1 / /mnt/a\040b rw - btrfs /dev/loop0 rw`, "/mnt/a b", true},
		{`36 35 0:1 / /mnt/x\134y rw - btrfs /dev/loop0 rw`, `/mnt/x\y`, true},
		{`36 35 0:1 / /mnt/bad\9 rw - btrfs /dev/loop0 rw`, `/mnt/bad\9`, true},
		{"short line", "", false},
	}
	for _, tt := range tests {
		got, ok := MountPoint(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("MountPoint(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMounted(t *testing.T) {
	dir := t.TempDir()
	info := filepath.Join(dir, "mountinfo")
	os.WriteFile(info, []byte("1 0 0:1 / / rw - ext4 /dev/vda rw\n2 1 0:2 / /mnt/zos-1 rw - btrfs /dev/loop0 rw\n"), 0o644)
	m := Mounter{MountInfo: info}
	for target, want := range map[string]bool{"/mnt/zos-1": true, "/mnt/zos-1/": true, "/mnt": false, "/mnt/zos-10": false} {
		if got, err := m.Mounted(target); err != nil || got != want {
			t.Errorf("Mounted(%s) = %v, %v; want %v", target, got, err, want)
		}
	}
}

func TestStatfs(t *testing.T) {
	st, err := Mounter{}.Statfs(t.TempDir())
	if err != nil || st.Total == 0 {
		t.Errorf("Statfs = %+v, %v", st, err)
	}
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		line string
		want Entry
		ok   bool
	}{
		{"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			Entry{"/mnt/parent", "ext3", "/dev/root", "rw,errors=continue"}, true},
		{"40 30 0:50 / /run/vm/a rw,relatime shared:7 - overlay overlay rw,lowerdir=/c/ro/x,upperdir=/v/upper,workdir=/v/work",
			Entry{"/run/vm/a", "overlay", "overlay", "rw,lowerdir=/c/ro/x,upperdir=/v/upper,workdir=/v/work"}, true},
		{`41 30 0:51 / /mnt/a\040b ro - fuse.flist flist ro,user_id=0`, Entry{"/mnt/a b", "fuse.flist", "flist", "ro,user_id=0"}, true},
		{"36 35 98:0 /mnt1 /mnt/parent rw - ext3", Entry{}, false},
		{"short", Entry{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseEntry(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseEntry(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
	e, _ := ParseEntry(tests[1].line)
	if got := e.Option("lowerdir"); got != "/c/ro/x" {
		t.Errorf("Option(lowerdir) = %q, want /c/ro/x", got)
	}
	if got := e.Option("index"); got != "" {
		t.Errorf("Option(index) = %q, want empty", got)
	}
}

func TestTable(t *testing.T) {
	es, err := Mounter{}.Table()
	if err != nil || len(es) == 0 {
		t.Fatalf("Table = %d entries, %v", len(es), err)
	}
	if es[0].FSType == "" {
		t.Errorf("first entry has no type: %+v", es[0])
	}
}

func TestMagic(t *testing.T) {
	if _, err := (Mounter{}).Magic(t.TempDir()); err != nil {
		t.Errorf("Magic: %v", err)
	}
}
