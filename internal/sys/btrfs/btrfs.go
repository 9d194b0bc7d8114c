// Package btrfs drives btrfs-progs: make a file system, create and delete
// subvolumes, enable quotas, set and read qgroup limits. The node's storage
// module builds pools, volumes, the cache and zdb devices on it.
package btrfs

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Btrfs runs the btrfs and mkfs.btrfs binaries found on PATH.
type Btrfs struct{}

// Mkfs makes a single-device btrfs with the given label on dev. It never
// forces: a device that already carries a file system is refused by mkfs.
func (Btrfs) Mkfs(dev, label string) error {
	if _, err := run("mkfs.btrfs", "-q", "-L", label, dev); err != nil {
		return fmt.Errorf("making btrfs on %s: %w", dev, err)
	}
	return nil
}

// QuotaEnable turns quotas on for the file system mounted at mnt and waits
// for the initial rescan, so that limits and usage are exact at once.
func (Btrfs) QuotaEnable(mnt string) error {
	if _, err := run("btrfs", "quota", "enable", mnt); err != nil {
		return fmt.Errorf("enabling quota on %s: %w", mnt, err)
	}
	if _, err := run("btrfs", "quota", "rescan", "-w", mnt); err != nil {
		return fmt.Errorf("rescanning quota on %s: %w", mnt, err)
	}
	return nil
}

// SubvolumeCreate creates a subvolume at path (BTRFS_IOC_SUBVOL_CREATE).
func (Btrfs) SubvolumeCreate(path string) error {
	if err := subvolCreate(path); err != nil {
		return fmt.Errorf("creating subvolume %s: %w", path, err)
	}
	return nil
}

// SubvolumeDelete deletes the subvolume at path with its content
// (BTRFS_IOC_SNAP_DESTROY). Its qgroup turns stale and is skipped by Qgroups.
func (Btrfs) SubvolumeDelete(path string) error {
	if err := subvolDestroy(path); err != nil {
		return fmt.Errorf("deleting subvolume %s: %w", path, err)
	}
	return nil
}

// Limit sets the referenced-bytes limit of the subvolume at path
// (BTRFS_IOC_QGROUP_LIMIT); 0 removes the limit.
func (Btrfs) Limit(path string, size uint64) error {
	if err := qgroupLimit(path, size); err != nil {
		return fmt.Errorf("setting qgroup limit of %s to %d: %w", path, size, err)
	}
	return nil
}

// Qgroup is the accounting of one subvolume.
type Qgroup struct {
	ID         string // e.g. 0/257
	Referenced uint64 // bytes reachable from the subvolume
	Exclusive  uint64 // bytes only this subvolume references
	Limit      uint64 // max referenced, 0 for none
	Path       string // path relative to the file system top, as btrfs prints it
}

// Qgroup returns the accounting of the subvolume at path.
func (Btrfs) Qgroup(path string) (Qgroup, error) {
	out, err := run("btrfs", "qgroup", "show", "--raw", "-re", "-f", path)
	if err != nil {
		return Qgroup{}, fmt.Errorf("reading qgroup of %s: %w", path, err)
	}
	qs, err := ParseQgroups([]byte(out))
	if err != nil {
		return Qgroup{}, fmt.Errorf("reading qgroup of %s: %w", path, err)
	}
	for _, q := range qs {
		if strings.HasPrefix(q.ID, "0/") {
			return q, nil
		}
	}
	return Qgroup{}, fmt.Errorf("reading qgroup of %s: no level-0 qgroup in output %q", path, out)
}

// Qgroups returns the accounting of every subvolume of the file system
// mounted at mnt, keyed by path relative to the top ("vol1", "vdisks").
func (Btrfs) Qgroups(mnt string) (map[string]Qgroup, error) {
	out, err := run("btrfs", "qgroup", "show", "--raw", "-re", mnt)
	if err != nil {
		return nil, fmt.Errorf("reading qgroups of %s: %w", mnt, err)
	}
	qs, err := ParseQgroups([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("reading qgroups of %s: %w", mnt, err)
	}
	m := make(map[string]Qgroup, len(qs))
	for _, q := range qs {
		if strings.HasPrefix(q.ID, "0/") && !strings.HasPrefix(q.Path, "<") {
			m[q.Path] = q
		}
	}
	return m, nil
}

// ParseQgroups reads the table of `btrfs qgroup show --raw -re` (btrfs-progs
// 6.x: qgroupid, rfer, excl, max_rfer, max_excl, path).
func ParseQgroups(b []byte) ([]Qgroup, error) {
	var qs []Qgroup
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.Contains(f[0], "/") || strings.HasPrefix(f[0], "-") {
			continue
		}
		q := Qgroup{ID: f[0]}
		var err error
		if q.Referenced, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return nil, fmt.Errorf("parsing qgroup line %q: %w", line, err)
		}
		if q.Exclusive, err = strconv.ParseUint(f[2], 10, 64); err != nil {
			return nil, fmt.Errorf("parsing qgroup line %q: %w", line, err)
		}
		if f[3] != "none" {
			if q.Limit, err = strconv.ParseUint(f[3], 10, 64); err != nil {
				return nil, fmt.Errorf("parsing qgroup line %q: %w", line, err)
			}
		}
		if len(f) > 5 {
			q.Path = strings.Join(f[5:], " ")
		}
		qs = append(qs, q)
	}
	return qs, nil
}

func run(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("running %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
