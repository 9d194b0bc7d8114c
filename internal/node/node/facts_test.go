package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/registry"
)

// TestFirmware: the node's registration carries its BIOS and board from
// DMI, cleaned to what the registry accepts; none without DMI.
func TestFirmware(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := &Node{cfg: Config{FactsRoot: root}}
	if f := n.firmware(); f != nil {
		t.Fatalf("without DMI: got %+v, want nil", f)
	}
	write("sys/class/dmi/id/bios_vendor", "SeaBIOS\n")
	write("sys/class/dmi/id/bios_version", "rel-1.16\x07\n")
	write("sys/class/dmi/id/board_vendor", strings.Repeat("B", 200))
	write("sys/class/dmi/id/board_name", "X11")
	got := n.firmware()
	want := &registry.Firmware{BIOSVendor: "SeaBIOS", BIOSVersion: "rel-1.16", BoardManufacturer: strings.Repeat("B", 128), BoardProduct: "X11"}
	if got == nil || *got != *want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
