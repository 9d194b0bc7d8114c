// Package blockdev reads what the kernel knows about block devices: size,
// rotational and removable flags and partitions from sysfs, and on-disk
// signatures (file systems, partition tables) through blkid. The node's
// storage module uses it to decide which disks it may claim.
package blockdev

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Disk is one whole block device as sysfs describes it.
type Disk struct {
	Name       string   // kernel name, e.g. sda, loop3
	Path       string   // device node, e.g. /dev/sda
	Size       uint64   // bytes
	Rotational bool     // queue/rotational = 1
	Removable  bool     // removable = 1
	ReadOnly   bool     // ro = 1
	Partitions []string // kernel names of its partitions
}

// Sysfs reads disks from a sysfs tree. Root is "/sys" on a live system; tests
// point it at a directory of their own.
type Sysfs struct {
	Root string // sysfs mount point, "/sys" when empty
	Dev  string // device node directory, "/dev" when empty
}

func (s Sysfs) root() string {
	if s.Root == "" {
		return "/sys"
	}
	return s.Root
}

func (s Sysfs) dev() string {
	if s.Dev == "" {
		return "/dev"
	}
	return s.Dev
}

// virtualPrefixes name kernel devices that are never physical disks.
var virtualPrefixes = []string{"loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd", "nullb"}

// Physical reports whether a kernel device name looks like a real disk rather
// than a loop, RAM, device-mapper or optical device.
func Physical(name string) bool {
	for _, p := range virtualPrefixes {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// List returns every disk under /sys/block, sorted by name, physical or not;
// callers filter with Physical.
func (s Sysfs) List() ([]Disk, error) {
	dir := filepath.Join(s.root(), "block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var disks []Disk
	for _, e := range entries {
		d, err := s.read(e.Name())
		if err != nil {
			return nil, err
		}
		disks = append(disks, d)
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

// Stat returns the disk behind a device node such as /dev/loop3.
func (s Sysfs) Stat(dev string) (Disk, error) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		real = dev
	}
	name := filepath.Base(real)
	if _, err := os.Stat(filepath.Join(s.root(), "block", name)); err != nil {
		return Disk{}, fmt.Errorf("%s is not a whole disk known to sysfs: %w", dev, err)
	}
	return s.read(name)
}

func (s Sysfs) read(name string) (Disk, error) {
	dir := filepath.Join(s.root(), "block", name)
	d := Disk{Name: name, Path: filepath.Join(s.dev(), name)}
	sectors, err := readUint(filepath.Join(dir, "size"))
	if err != nil {
		return Disk{}, fmt.Errorf("reading size of %s: %w", name, err)
	}
	d.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the hardware
	if v, err := readUint(filepath.Join(dir, "queue", "rotational")); err == nil {
		d.Rotational = v == 1
	}
	if v, err := readUint(filepath.Join(dir, "removable")); err == nil {
		d.Removable = v == 1
	}
	if v, err := readUint(filepath.Join(dir, "ro")); err == nil {
		d.ReadOnly = v == 1
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Disk{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
			d.Partitions = append(d.Partitions, e.Name())
		}
	}
	return d, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// Signature is what blkid found at the start of a device or file.
type Signature struct {
	Type      string // file system type (btrfs, ext4, swap, ...), empty if none
	Label     string
	UUID      string
	PartTable string // partition table type (gpt, dos), empty if none
}

// Empty reports whether nothing was recognised: no file system and no
// partition table.
func (s Signature) Empty() bool { return s.Type == "" && s.PartTable == "" }

// Blkid probes signatures with `blkid -p` (low-level probing, no cache).
type Blkid struct{}

// Probe returns the signature of a device or image file. A device with no
// signature gives an empty Signature and no error.
func (Blkid) Probe(path string) (Signature, error) {
	argv := []string{"blkid", "-p", "-o", "export", path}
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		return Signature{}, nil // blkid: nothing found
	}
	if err != nil {
		return Signature{}, fmt.Errorf("running %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return ParseExport(out.Bytes()), nil
}

// ParseExport reads blkid's "-o export" KEY=value lines.
func ParseExport(b []byte) Signature {
	var s Signature
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "TYPE":
			s.Type = v
		case "LABEL":
			s.Label = v
		case "UUID":
			s.UUID = v
		case "PTTYPE":
			s.PartTable = v
		}
	}
	return s
}
