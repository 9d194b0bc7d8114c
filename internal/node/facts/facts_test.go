package facts

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestParseSMBIOSGolden decodes the QEMU-shaped table and compares the DMI
// answer with testdata/qemu.dmi.json (-update rewrites it).
func TestParseSMBIOSGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "qemu.smbios"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseSMBIOS(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, filepath.Join("testdata", "qemu.dmi.json"), append(got, '\n'))
}

// TestParseSMBIOSValues checks decoded values one by one, so that a wrong
// golden cannot hide a decoding error.
func TestParseSMBIOSValues(t *testing.T) {
	d, err := ParseSMBIOS(qemuTable())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(d.Sections), 7; got != want {
		t.Fatalf("got %d sections, want %d (end of table excluded)", got, want)
	}
	prop := func(typ int, name string) string {
		for _, s := range d.Sections {
			if s.Type == typ {
				return s.SubSections[0].Properties[name].Val
			}
		}
		return "<no section>"
	}
	for _, tt := range []struct {
		typ        int
		name, want string
	}{
		{0, "Vendor", "SeaBIOS"},
		{0, "Release Date", "04/01/2014"},
		{0, "BIOS Revision", "0.0"},
		{1, "Manufacturer", "QEMU"},
		{1, "Product Name", "Standard PC (i440FX + PIIX, 1996)"},
		{1, "Serial Number", "Not Specified"},
		{1, "UUID", "12345678-1234-5678-9ABC-DEF012345678"},
		{3, "Type", "Other"},
		{4, "Max Speed", "2000 MHz"},
		{4, "Core Count", "2"},
		{17, "Size", "2 GB"},
		{17, "Locator", "DIMM 0"},
		{17, "Speed", "Unknown"},
	} {
		if got := prop(tt.typ, tt.name); got != tt.want {
			t.Errorf("type %d %s: got %q, want %q", tt.typ, tt.name, got, tt.want)
		}
	}
	if got, want := d.Sections[0].HandleLine, "Handle 0x0000, DMI type 0, 24 bytes"; got != want {
		t.Errorf("got handle line %q, want %q", got, want)
	}
	if got, want := d.Sections[5].TypeStr, "Custom Type 128"; got != want {
		t.Errorf("got OEM type %q, want %q", got, want)
	}
}

// TestParseSMBIOSBad: truncated and corrupt tables give an error, never a
// panic or a partial answer.
func TestParseSMBIOSBad(t *testing.T) {
	good := qemuTable()
	for _, tt := range []struct {
		name  string
		table []byte
		want  string
	}{
		{"empty", nil, "empty"},
		{"short header", []byte{1, 4}, "a header needs 4"},
		{"length below header", []byte{1, 2, 0, 0, 0, 0}, "does not fit"},
		{"length past end", []byte{1, 200, 0, 0, 0, 0}, "does not fit"},
		{"strings without end", []byte{1, 4, 0, 0, 'a', 'b'}, "do not end"},
		{"cut in the middle", good[:30], "do not end"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSMBIOS(tt.table)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A string index past the strings is shown, not a panic.
	d, err := ParseSMBIOS(smb(2, 1, []byte{9, 0, 0, 0, 0}, "only"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Sections[0].SubSections[0].Properties["Manufacturer"].Val; got != "<BAD INDEX>" {
		t.Errorf("got %q, want <BAD INDEX>", got)
	}
}

func FuzzParseSMBIOS(f *testing.F) {
	f.Add(qemuTable())
	f.Add([]byte{127, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseSMBIOS(b)
		if err != nil {
			return
		}
		if len(d.Sections) > maxStructures {
			t.Fatalf("got %d sections, more than the bound %d", len(d.Sections), maxStructures)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("answer does not marshal: %v", err)
		}
	})
}

// tree writes files below a temporary root.
func tree(t *testing.T, files map[string]string) Reader {
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Reader{Root: root}
}

func TestDMISources(t *testing.T) {
	t.Run("smbios table first", func(t *testing.T) {
		r := tree(t, map[string]string{"sys/firmware/dmi/tables/DMI": string(qemuTable()), "sys/class/dmi/id/sys_vendor": "Other"})
		d, err := r.DMI()
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Sections[1].SubSections[0].Properties["Manufacturer"].Val; got != "QEMU" {
			t.Errorf("got manufacturer %q, want QEMU (from the table)", got)
		}
	})
	t.Run("sysfs when no table", func(t *testing.T) {
		r := tree(t, map[string]string{
			"sys/class/dmi/id/sys_vendor":   "Supermicro\n",
			"sys/class/dmi/id/product_name": "X11SSL\n",
			"sys/class/dmi/id/chassis_type": "17\n",
		})
		d, err := r.DMI()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(d.Sections), 2; got != want {
			t.Fatalf("got %d sections, want %d (system, chassis)", got, want)
		}
		if got := d.Sections[0].SubSections[0].Properties["Product Name"].Val; got != "X11SSL" {
			t.Errorf("got product %q, want X11SSL", got)
		}
		if got := d.Sections[1].SubSections[0].Properties["Type"].Val; got != "Main Server Chassis" {
			t.Errorf("got chassis %q, want Main Server Chassis", got)
		}
	})
	t.Run("none", func(t *testing.T) {
		if _, err := tree(t, nil).DMI(); !errors.Is(err, ErrNoDMI) {
			t.Fatalf("got %v, want ErrNoDMI", err)
		}
	})
	t.Run("corrupt table", func(t *testing.T) {
		r := tree(t, map[string]string{"sys/firmware/dmi/tables/DMI": "\x01\xff"})
		if _, err := r.DMI(); err == nil || !strings.Contains(err.Error(), "decoding the smbios table") {
			t.Fatalf("got %v, want a decoding error", err)
		}
	})
}

func TestHypervisor(t *testing.T) {
	const bare = "processor\t: 0\nflags\t\t: fpu vme sse2 avx\n"
	const guest = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor avx\n"
	for _, tt := range []struct {
		name        string
		files       map[string]string
		virtualized bool
		want        string
	}{
		{"bare metal", map[string]string{"proc/cpuinfo": bare, "sys/class/dmi/id/sys_vendor": "Dell Inc.", "sys/class/dmi/id/product_name": "PowerEdge R640"}, false, ""},
		{"nothing known", nil, false, ""},
		{"qemu by dmi", map[string]string{"proc/cpuinfo": guest, "sys/class/dmi/id/sys_vendor": "QEMU", "sys/class/dmi/id/product_name": "Standard PC (i440FX + PIIX, 1996)"}, true, "qemu"},
		{"kvm product", map[string]string{"proc/cpuinfo": guest, "sys/class/dmi/id/sys_vendor": "Red Hat", "sys/class/dmi/id/product_name": "KVM"}, true, "kvm"},
		{"vmware", map[string]string{"sys/class/dmi/id/sys_vendor": "VMware, Inc.", "sys/class/dmi/id/product_name": "VMware Virtual Platform"}, true, "vmware"},
		{"hyper-v", map[string]string{"sys/class/dmi/id/sys_vendor": "Microsoft Corporation", "sys/class/dmi/id/product_name": "Virtual Machine"}, true, "hyperv"},
		{"xen sysfs", map[string]string{"sys/hypervisor/type": "xen\n"}, true, "xen"},
		{"qemu by smbios table", map[string]string{"sys/firmware/dmi/tables/DMI": string(qemuTable())}, true, "qemu"},
		{"cpu flag only", map[string]string{"proc/cpuinfo": guest}, true, "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tree(t, tt.files).Hypervisor()
			if h.Virtualized != tt.virtualized || h.Name != tt.want {
				t.Fatalf("got virtualized %v name %q (%s), want %v %q", h.Virtualized, h.Name, h.Evidence, tt.virtualized, tt.want)
			}
		})
	}
}
