package blockdev

import (
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SSDSeekTime is the average random-read latency under which a disk counts
// as solid state (the rotational flag of sysfs is not trusted: RAID cards and
// virtual disks report whatever they like).
const SSDSeekTime = 500 * time.Microsecond

// SeekTime measures the average latency of samples 4 KiB reads at offsets
// spread over the whole device, bypassing the page cache (O_DIRECT).
func SeekTime(path string, samples int) (time.Duration, error) {
	if samples <= 0 {
		samples = 32
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return 0, fmt.Errorf("measuring seek time of %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("measuring seek time of %s: %w", path, err)
	}
	const block = 4096
	blocks := size / block
	if blocks < 2 {
		return 0, fmt.Errorf("measuring seek time of %s: device too small (%d bytes)", path, size)
	}
	// O_DIRECT wants a buffer aligned to the logical block size.
	raw := make([]byte, 2*block)
	off := block - int(uintptr(unsafe.Pointer(&raw[0]))%block)
	buf := raw[off : off+block]
	// Alternate between the two ends and walk inwards so that every read
	// is a long seek, whatever the disk caches.
	var total time.Duration
	for i := 0; i < samples; i++ {
		step := blocks / int64(samples+1) * int64(i/2)
		at := step
		if i%2 == 1 {
			at = blocks - 1 - step
		}
		t0 := time.Now()
		if _, err := f.ReadAt(buf, at*block); err != nil && err != io.EOF {
			return 0, fmt.Errorf("measuring seek time of %s: reading block %d: %w", path, at, err)
		}
		total += time.Since(t0)
	}
	return total / time.Duration(samples), nil
}
