// Package flistd is the node's flist module: it downloads the flists that
// workloads name, serves each distinct one read-only through its own FUSE
// daemon (`zos flist mount`, a separate process in its own session, so that
// mounts outlive the node process), puts writable overlays on top for VM
// roots, tells the boot mode of a flist (Inspect) and collects the mounts no
// overlay uses any more. The zmachine primitive uses it.
package flistd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/sys/mount"
)

// Defaults of the optional Config fields.
const (
	DefaultMaxFlistSize    = 64 << 20
	DefaultDownloadTimeout = 2 * time.Minute
	DefaultStartTimeout    = 15 * time.Second
	DefaultCacheSize       = 1 << 30
)

// Config of the module.
type Config struct {
	Root      string // downloads, read-only mounts, pid files (survives node restarts)
	Binary    string // the zos executable that serves FUSE mounts ("" = os.Executable())
	CacheDir  string // block cache shared by every mount ("" = Root/cache)
	CacheSize int64  // bound of the block cache in bytes (DefaultCacheSize when 0)

	MaxFlistSize    int64         // largest .fl accepted (DefaultMaxFlistSize when 0)
	DownloadTimeout time.Duration // one .fl download (DefaultDownloadTimeout when 0)
	StartTimeout    time.Duration // a daemon has this long to mount (DefaultStartTimeout when 0)

	// Egress decides what the node may contact for a flist a tenant names:
	// its .fl download (redirects included) and the block stores its
	// routes name, in the node process and in the daemons. nil is the
	// zero policy: public addresses only.
	Egress *egress.Policy
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Root == "" || !filepath.IsAbs(c.Root) {
		return fmt.Errorf("flist root %q: want an absolute path", c.Root)
	}
	if c.CacheDir != "" && !filepath.IsAbs(c.CacheDir) {
		return fmt.Errorf("flist cache %q: want an absolute path", c.CacheDir)
	}
	if c.CacheSize < 0 || c.MaxFlistSize < 0 || c.DownloadTimeout < 0 || c.StartTimeout < 0 {
		return errors.New("flist config: negative size or timeout")
	}
	return nil
}

// Errors of the module.
var (
	// ErrEscape marks a flist whose probed path is a symlink leading out of
	// the flist.
	ErrEscape = errors.New("symlink leads out of the flist")
	// ErrTooLarge marks a .fl file over Config.MaxFlistSize.
	ErrTooLarge = errors.New("flist file too large")
	// ErrTargetBusy marks an overlay target that already holds another mount.
	ErrTargetBusy = errors.New("target holds another mount")
)

// Module manages the node's flist mounts. It is safe for concurrent use.
type Module struct {
	cfg    Config
	log    *slog.Logger
	mnt    mount.Mounter
	egress *egress.Policy
	client *http.Client // through egress

	mu    sync.Mutex             // guards locks
	locks map[string]*sync.Mutex // one per flist hash: held while its mount changes
}

// Directories under Config.Root.
const (
	dirFlists   = "fl"       // <hash>.fl: downloaded flists, by content
	dirURLs     = "urls"     // <sha256(url)>: the hash a URL gave
	dirMounts   = "ro"       // <hash>/: read-only mounts
	dirRun      = "run"      // <hash>.pid, <hash>.log: daemons
	dirOverlays = "overlays" // <sha256(target)>: overlays and the daemon they sit on
)

// New makes the module over cfg.Root (created if missing). Mounts made by
// an earlier module over the same root are picked up as they are.
func New(cfg Config, log *slog.Logger) (*Module, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the zos executable: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.Root, "cache")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.MaxFlistSize == 0 {
		cfg.MaxFlistSize = DefaultMaxFlistSize
	}
	if cfg.DownloadTimeout == 0 {
		cfg.DownloadTimeout = DefaultDownloadTimeout
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	for _, d := range []string{dirFlists, dirURLs, dirMounts, dirRun, dirOverlays} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating flist directories: %w", err)
		}
	}
	// Mount points must be reachable by the FUSE daemon and overlayfs.
	if err := os.Chmod(filepath.Join(cfg.Root, dirMounts), 0o755); err != nil {
		return nil, fmt.Errorf("creating flist directories: %w", err)
	}
	policy := cfg.Egress
	if policy == nil {
		policy = &egress.Policy{}
	}
	return &Module{
		cfg:    cfg,
		log:    log.With("component", "flistd"),
		egress: policy,
		client: policy.Client(cfg.DownloadTimeout),
		locks:  map[string]*sync.Mutex{},
	}, nil
}

// Close releases nothing the mounts need: daemons and overlays stay, so that
// running workloads keep their roots across a node restart.
func (m *Module) Close() error {
	m.client.CloseIdleConnections()
	return nil
}

// lock takes the lock of one flist; the returned function releases it.
func (m *Module) lock(hash string) func() {
	m.mu.Lock()
	l, ok := m.locks[hash]
	if !ok {
		l = &sync.Mutex{}
		m.locks[hash] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (m *Module) path(parts ...string) string {
	return filepath.Join(append([]string{m.cfg.Root}, parts...)...)
}

func (m *Module) roDir(hash string) string   { return m.path(dirMounts, hash) }
func (m *Module) flPath(hash string) string  { return m.path(dirFlists, hash+".fl") }
func (m *Module) pidPath(hash string) string { return m.path(dirRun, hash+".pid") }
func (m *Module) logPath(hash string) string { return m.path(dirRun, hash+".log") }

// egressArgs passes the policy's allowed prefixes to a daemon (which
// finds the node's own addresses itself).
func (m *Module) egressArgs() []string {
	var out []string
	for _, p := range m.egress.Allow {
		out = append(out, "--egress-allow", p.String())
	}
	return out
}

// MountRO downloads (or reuses) the flist at url and returns its read-only
// mount point, shared by every user of the same flist content, and the
// content hash that names it. A mount whose daemon died is repaired.
func (m *Module) MountRO(ctx context.Context, url string) (dir, hash string, err error) {
	hash, err = m.fetch(ctx, url)
	if err != nil {
		return "", "", err
	}
	unlock := m.lock(hash)
	defer unlock()
	if _, err := m.ensureRO(ctx, hash); err != nil {
		return "", "", fmt.Errorf("mounting flist %s: %w", url, err)
	}
	return m.roDir(hash), hash, nil
}

// GC stops the read-only mounts that no overlay uses any more: the daemon is
// stopped, the mount removed and its directory deleted. Downloads stay.
func (m *Module) GC() error {
	ents, err := os.ReadDir(m.path(dirMounts))
	if err != nil {
		return fmt.Errorf("listing flist mounts: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !validHash(e.Name()) {
			continue
		}
		if err := m.gcOne(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Module) gcOne(hash string) error {
	unlock := m.lock(hash)
	defer unlock()
	users, err := m.overlaysOn(m.roDir(hash))
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return nil
	}
	if err := m.stopRO(hash); err != nil {
		return fmt.Errorf("collecting flist %s: %w", hash, err)
	}
	m.log.Info("flist_collected", "hash", hash)
	return nil
}

// overlaysOn returns the overlay mount points whose lower layer is dir.
func (m *Module) overlaysOn(dir string) ([]string, error) {
	table, err := m.mnt.Table()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range table {
		if e.FSType != "overlay" {
			continue
		}
		for _, l := range strings.Split(e.Option("lowerdir"), ":") {
			if l == dir {
				out = append(out, e.Mountpoint)
			}
		}
	}
	return out, nil
}

// entryAt returns the topmost mount on target.
func (m *Module) entryAt(target string) (mount.Entry, bool, error) {
	table, err := m.mnt.Table()
	if err != nil {
		return mount.Entry{}, false, err
	}
	var found mount.Entry
	ok := false
	for _, e := range table {
		if e.Mountpoint == target {
			found, ok = e, true
		}
	}
	return found, ok, nil
}

func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
