package btrfs

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceStats are the error counters btrfs keeps per device of a file
// system (`btrfs device stats`), summed over its devices.
type DeviceStats struct {
	WriteErrs      uint64
	ReadErrs       uint64
	FlushErrs      uint64
	CorruptionErrs uint64
	GenerationErrs uint64
}

// Total is the sum of every counter.
func (s DeviceStats) Total() uint64 {
	return s.WriteErrs + s.ReadErrs + s.FlushErrs + s.CorruptionErrs + s.GenerationErrs
}

func (s DeviceStats) String() string {
	return fmt.Sprintf("write_io_errs %d, read_io_errs %d, flush_io_errs %d, corruption_errs %d, generation_errs %d",
		s.WriteErrs, s.ReadErrs, s.FlushErrs, s.CorruptionErrs, s.GenerationErrs)
}

// DeviceStats reads the error counters of the file system mounted at mnt.
// `btrfs device stats` exits non-zero when a counter is not zero; the
// counters are read from its output either way.
func (Btrfs) DeviceStats(mnt string) (DeviceStats, error) {
	out, err := run("btrfs", "device", "stats", mnt)
	s, perr := ParseDeviceStats([]byte(out))
	if perr != nil {
		if err != nil {
			return DeviceStats{}, fmt.Errorf("reading device stats of %s: %w", mnt, err)
		}
		return DeviceStats{}, fmt.Errorf("reading device stats of %s: %w", mnt, perr)
	}
	return s, nil
}

// ParseDeviceStats reads the lines "[/dev/loop0].write_io_errs    0" of
// `btrfs device stats`, summing the counters of every device. Output
// without any counter is an error.
func ParseDeviceStats(b []byte) (DeviceStats, error) {
	var s DeviceStats
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || !strings.HasPrefix(f[0], "[") {
			continue
		}
		i := strings.LastIndex(f[0], "].")
		if i < 0 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return DeviceStats{}, fmt.Errorf("parsing device stats line %q: %w", line, err)
		}
		var c *uint64
		switch f[0][i+2:] {
		case "write_io_errs":
			c = &s.WriteErrs
		case "read_io_errs":
			c = &s.ReadErrs
		case "flush_io_errs":
			c = &s.FlushErrs
		case "corruption_errs":
			c = &s.CorruptionErrs
		case "generation_errs":
			c = &s.GenerationErrs
		default:
			continue
		}
		*c += v
		n++
	}
	if n == 0 {
		return DeviceStats{}, fmt.Errorf("no counters in device stats output %q", string(b))
	}
	return s, nil
}
