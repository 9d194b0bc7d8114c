// Package storage is the node's storage module: it claims the free disks of
// the machine (or, in hosted mode, loop-backed sparse files), makes one btrfs
// pool per disk, keeps the node's persistent cache on one of them and rents
// the rest to workloads as volumes (subvolume + qgroup limit), virtual disks
// (preallocated no-copy-on-write files) and zdb devices (one subvolume per
// HDD). The node wires it; the provision engine's managers call it.
//
// Everything that touches the kernel goes through the small interfaces of
// System, implemented by the internal/sys packages (HostSystem) and by fakes
// in tests.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/zos-go/zos/internal/gridtypes"
)

// Sentinel errors; compare with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrNoSpace  = errors.New("no space")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid argument")
)

// DeviceType is the kind of disk a pool sits on.
type DeviceType string

// Device types.
const (
	SSD DeviceType = "ssd"
	HDD DeviceType = "hdd"
)

// Names of the pool entries the module keeps for itself.
const (
	cacheName  = "zos-cache"
	vdisksName = "vdisks"
	zdbName    = "zdb"
	zdbTmpName = ".zdb-new" // a device being made (not a valid volume name)
	markerName = ".zos-pool.json"
)

const gib = uint64(1) << 30

// HostedDisk is a loop-backed sparse file that stands for a disk in hosted
// mode.
type HostedDisk struct {
	Type DeviceType
	Size uint64 // bytes
}

// ParseHostedDisk reads the --disk flag form "ssd:20G" / "hdd:500M".
func ParseHostedDisk(s string) (HostedDisk, error) {
	t, sz, ok := strings.Cut(s, ":")
	if !ok {
		return HostedDisk{}, fmt.Errorf("parsing disk %q: want TYPE:SIZE such as ssd:20G: %w", s, ErrInvalid)
	}
	d := HostedDisk{Type: DeviceType(strings.ToLower(t))}
	if d.Type != SSD && d.Type != HDD {
		return HostedDisk{}, fmt.Errorf("parsing disk %q: type must be ssd or hdd: %w", s, ErrInvalid)
	}
	size, err := gridtypes.ParseSize(sz)
	if err != nil {
		return HostedDisk{}, fmt.Errorf("parsing disk %q: %w: %w", s, err, ErrInvalid)
	}
	d.Size = size
	return d, nil
}

// Config is read once by the node and passed in.
type Config struct {
	Root    string       // where pools are mounted, one directory per pool label (e.g. DATA/mnt)
	DataDir string       // where hosted disk files live (hosted mode)
	Disks   []HostedDisk // hosted-mode disks, made as sparse files under DataDir
	Devices []string     // further block devices to consider (spare disks of a hosted server, tests)
	// ScanHost claims the machine's free physical disks found in sysfs. Only
	// real nodes set it: in hosted mode the host's disks are not ours.
	ScanHost bool
	Prefix   string // per-node prefix of pool labels, so several nodes share a host
	// RecreateMissing makes a hosted disk file again, empty, when the one
	// recorded in DataDir is missing or shrank. Without it such a disk is
	// shown as a failed pool: only the farmer decides to lose its data.
	RecreateMissing bool

	CacheStep          uint64        // cache quota start and step; 5 GiB when 0
	CacheCheckInterval time.Duration // how often the cache quota is checked; 5 min when 0
	CacheTmpfsSize     uint64        // size of the tmpfs cache without any pool; 500 MiB when 0
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Root == "" || !filepath.IsAbs(c.Root) {
		return fmt.Errorf("storage root %q must be an absolute path: %w", c.Root, ErrInvalid)
	}
	if len(c.Disks) > 0 && (c.DataDir == "" || !filepath.IsAbs(c.DataDir)) {
		return fmt.Errorf("hosted disks need an absolute data dir, got %q: %w", c.DataDir, ErrInvalid)
	}
	for i, d := range c.Disks {
		if d.Type != SSD && d.Type != HDD {
			return fmt.Errorf("hosted disk %d: type %q must be ssd or hdd: %w", i, d.Type, ErrInvalid)
		}
		if d.Size < 256<<20 {
			return fmt.Errorf("hosted disk %d: size %d below the 256 MiB btrfs needs: %w", i, d.Size, ErrInvalid)
		}
	}
	if len(c.Prefix) > 64 {
		return fmt.Errorf("prefix %q is longer than 64 bytes: %w", c.Prefix, ErrInvalid)
	}
	for _, r := range c.Prefix {
		if !nameRune(r) {
			return fmt.Errorf("prefix %q may hold only letters, digits and - _ .: %w", c.Prefix, ErrInvalid)
		}
	}
	if c.CacheStep == 0 {
		c.CacheStep = 5 * gib
	}
	if c.CacheCheckInterval == 0 {
		c.CacheCheckInterval = 5 * time.Minute
	}
	if c.CacheTmpfsSize == 0 {
		c.CacheTmpfsSize = 500 << 20
	}
	return nil
}

// PoolInfo describes one pool for capacity reporting and zos.storage.pools.
type PoolInfo struct {
	Name   string     `json:"name"`
	Type   DeviceType `json:"type"`
	Size   uint64     `json:"size"`
	Used   uint64     `json:"used"`             // allocated: volume limits, vdisk sizes, zdb devices, cache quota
	Broken string     `json:"broken,omitempty"` // why the pool cannot be used, empty when healthy
}

// IgnoredDisk is a disk the module left alone, with the reason.
type IgnoredDisk struct {
	Path   string
	Reason string
}

// Volume is a subvolume with a size limit.
type Volume struct {
	Name  string
	Path  string
	Size  uint64 // limit in bytes
	Usage uint64 // referenced bytes
}

// VDisk is a preallocated file used as a VM disk.
type VDisk struct {
	Name string
	Path string
	Size uint64
}

// Device is a zdb subvolume on an HDD pool. Its ID is the pool name.
type Device struct {
	ID   string
	Path string
	Pool string
	Size uint64
}

// pool is one btrfs file system on one disk.
type pool struct {
	name      string // file system label
	dev       string
	path      string // mount point
	typ       DeviceType
	size      uint64
	backing   string // hosted disk file, empty for real disks
	mounted   bool   // mounted by this module, to unmount on Close
	broken    string
	allocated uint64
	hasVdisks bool
	fresh     bool   // formatted by this start
	missing   bool   // a recorded hosted disk that is not there: never mounted
	fileSize  uint64 // size of the hosted disk file when attached
	devSize   uint64 // size of the block device when claimed
	errs      uint64 // btrfs device error counters when last checked
	statsRead bool   // errs was read once
}

func (p *pool) free() uint64 {
	if p.allocated >= p.size {
		return 0
	}
	return p.size - p.allocated
}

// volume, vdisk and device are the module's records. ready is false while
// creation runs outside the lock: the name and space are reserved.
type volume struct {
	pool  *pool
	size  uint64
	ready bool
}

type vdisk struct {
	pool  *pool
	size  uint64
	ready bool
}

type device struct {
	pool  *pool
	size  uint64
	ready bool
}

// Module owns the node's disks. Its methods are safe for concurrent use.
type Module struct {
	cfg Config
	log *slog.Logger
	sys System

	setup sync.Mutex // serialises creation of per-pool vdisks subvolumes

	mu       sync.Mutex // guards everything below
	pools    []*pool
	ignored  []IgnoredDisk
	volumes  map[string]*volume
	vdisks   map[string]*vdisk
	devices  map[string]*device // by pool name
	cache    *pool              // pool holding zos-cache, nil for tmpfs
	cacheLim uint64             // cache quota
	cacheDir string
	limited  bool
	tmpfs    string // tmpfs mount point we made, "" if none
	state    diskState
	loops    []string // loop devices we attached
	cancel   context.CancelFunc
	done     chan struct{}
}

// New makes a storage module; Start claims the disks.
func New(cfg Config, sys System, log *slog.Logger) (*Module, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring storage: %w", err)
	}
	if err := sys.validate(); err != nil {
		return nil, fmt.Errorf("configuring storage: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Module{
		cfg:     cfg,
		log:     log.With("component", "storage"),
		sys:     sys,
		volumes: make(map[string]*volume),
		vdisks:  make(map[string]*vdisk),
		devices: make(map[string]*device),
	}, nil
}

// ValidName checks a volume, vdisk or device name: not empty, at most 200
// bytes of letters, digits and ": - _ .", no "..", not starting with a dot,
// and none of the names the module keeps for itself.
func ValidName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("name %q %s: %w", name, why, ErrInvalid)
	}
	switch {
	case name == "":
		return bad("is empty")
	case len(name) > 200:
		return bad("is longer than 200 bytes")
	case strings.Contains(name, ".."):
		return bad(`contains ".."`)
	case strings.HasPrefix(name, "."):
		return bad("starts with a dot")
	case name == cacheName || name == vdisksName || name == zdbName:
		return bad("is reserved")
	}
	for _, r := range name {
		if !nameRune(r) && r != ':' {
			return bad(fmt.Sprintf("contains %q (allowed: letters, digits, : - _ .)", r))
		}
	}
	return nil
}

func nameRune(r rune) bool {
	return r < unicode.MaxASCII && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

func sizeString(n uint64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
