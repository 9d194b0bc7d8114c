package facts

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// smb builds one SMBIOS structure: header, formatted area (the bytes after
// the header), strings.
func smb(typ byte, handle uint16, area []byte, strs ...string) []byte {
	b := []byte{typ, byte(4 + len(area)), 0, 0}
	binary.LittleEndian.PutUint16(b[2:], handle)
	b = append(b, area...)
	for _, s := range strs {
		b = append(b, s...)
		b = append(b, 0)
	}
	if len(strs) == 0 {
		b = append(b, 0)
	}
	return append(b, 0)
}

// qemuTable is an SMBIOS table shaped like the one QEMU's i440fx machine
// gives its guests (SeaBIOS, "QEMU", "Standard PC (i440FX + PIIX, 1996)"),
// with a memory device and an OEM structure the decoder does not know.
func qemuTable() []byte {
	var t []byte
	// Type 0: vendor 1, version 2, start segment, release date 3, ROM
	// size, characteristics (8), ext (2), BIOS revision 0.0, EC ff.ff.
	t = append(t, smb(0, 0x0000, []byte{1, 2, 0x00, 0xe8, 3, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0xff, 0xff},
		"SeaBIOS", "rel-1.16.2-0-gea1b7a073390-prebuilt.qemu.org", "04/01/2014")...)
	// Type 1: manufacturer 1, product 2, version 3, serial 0, UUID,
	// wake-up type, SKU 0, family 0.
	uuid := []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}
	area := append([]byte{1, 2, 3, 0}, uuid...)
	area = append(area, 6, 0, 0)
	t = append(t, smb(1, 0x0100, area, "QEMU", "Standard PC (i440FX + PIIX, 1996)", "pc-i440fx-8.0")...)
	// Type 3: manufacturer 1, type 1 (Other), version 2, serial 0, asset 0.
	t = append(t, smb(3, 0x0300, []byte{1, 0x01, 2, 0, 0, 3, 3, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "QEMU", "pc-i440fx-8.0")...)
	// Type 4: socket 1, type, family, manufacturer 2, id (8), version 3,
	// voltage, clock, max speed 2000, current 2000, status, upgrade,
	// caches (6), serial, asset, part, cores 2, enabled 2, threads 2.
	p := make([]byte, 0x2A-4)
	p[0] = 1                                        // 0x04 socket
	p[3] = 2                                        // 0x07 manufacturer
	p[0x10-4] = 3                                   // 0x10 version
	binary.LittleEndian.PutUint16(p[0x14-4:], 2000) // max speed
	p[0x23-4], p[0x24-4], p[0x25-4] = 2, 2, 2
	t = append(t, smb(4, 0x0400, p, "CPU 0", "QEMU", "pc-i440fx-8.0")...)
	// Type 17: size 2048 MB, locator 1, bank 0, speed unknown,
	// manufacturer 2, serial 0, part 0.
	m := make([]byte, 0x28-4)
	binary.LittleEndian.PutUint16(m[0x0C-4:], 2048)
	m[0x10-4] = 1
	m[0x17-4] = 2
	t = append(t, smb(17, 0x1100, m, "DIMM 0", "QEMU")...)
	// An OEM type and type 32 (boot).
	t = append(t, smb(0x80, 0x8000, []byte{1, 2, 3})...)
	t = append(t, smb(32, 0x2000, make([]byte, 7))...)
	return append(t, smb(127, 0x7f00, nil)...)
}

// TestQEMUTableGolden keeps testdata/qemu.smbios, the golden input and
// the fuzz corpus's seed, in step with qemuTable (-update writes it).
func TestQEMUTableGolden(t *testing.T) {
	testutil.Golden(t, filepath.Join("testdata", "qemu.smbios"), qemuTable())
}
