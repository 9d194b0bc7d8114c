// Package input watches the kernel's input devices for the power button
// (the ACPI button driver reports it as KEY_POWER on /dev/input/event*):
// that is how QEMU's system_powerdown and a server's front button reach
// zos init, which then stops the node and powers off.
package input

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Linux input event constants.
const (
	evKey    = 1
	keyPower = 116
	// eventSize is struct input_event on 64-bit: timeval (16), type (2),
	// code (2), value (4).
	eventSize = 24
)

// IsPowerPress reports whether one input_event record is a KEY_POWER press.
func IsPowerPress(ev []byte) bool {
	if len(ev) < eventSize {
		return false
	}
	typ := binary.LittleEndian.Uint16(ev[16:])
	code := binary.LittleEndian.Uint16(ev[18:])
	value := int32(binary.LittleEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && value == 1
}

// WatchPowerButton reads every /dev/input/event* device and calls pressed
// on each power button press, until ctx ends. It returns the number of
// devices watched; its goroutines end with ctx.
func WatchPowerButton(ctx context.Context, devDir string, pressed func()) int {
	paths, _ := filepath.Glob(filepath.Join(devDir, "event*"))
	var files []*os.File
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		files = append(files, f)
	}
	var wg sync.WaitGroup
	for _, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, eventSize)
			for {
				if _, err := io.ReadFull(f, buf); err != nil {
					return
				}
				if IsPowerPress(buf) {
					pressed()
				}
			}
		}()
	}
	go func() {
		<-ctx.Done()
		for _, f := range files {
			f.Close()
		}
		wg.Wait()
	}()
	return len(files)
}
