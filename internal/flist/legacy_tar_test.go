package flist

import (
	"fmt"
	"testing"
)

// TestLegacyRegularFile: a pre-POSIX archive marks regular files with type
// '\x00' (tar.TypeRegA); they are imported as regular files with their content.
func TestLegacyRegularFile(t *testing.T) {
	data := makeTar(t, false, reg("./etc/motd", "hello\n"))
	// Turn the first header's type into '\x00' and fix its checksum.
	h := data[:512]
	h[156] = 0
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))

	m, _, err := buildTar(t, data)
	if err != nil {
		t.Fatal(err)
	}
	in, ok := m.Lookup("etc/motd")
	if !ok {
		t.Fatal("etc/motd: missing")
	}
	if in.Type() != ModeRegular || in.Size != 6 {
		t.Errorf("got mode %o size %d, want a regular file of 6 bytes", in.Mode, in.Size)
	}
}
