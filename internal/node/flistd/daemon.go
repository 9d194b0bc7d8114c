package flistd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/sys/daemon"
	"github.com/zos-go/zos/internal/sys/mount"
)

// DaemonConfig is what `zos flist mount` serves.
type DaemonConfig struct {
	Meta       string // the .fl file
	CacheDir   string // shared block cache
	CacheSize  int64
	Mountpoint string
	// EgressAllow are the prefixes the node's egress policy allows; the
	// daemon reads the flist's stores through that policy, with the node's
	// own addresses taken from its interfaces.
	EgressAllow []netip.Prefix
}

// daemonPolicy is the egress policy of a daemon.
func daemonPolicy(allow []netip.Prefix) *egress.Policy {
	return &egress.Policy{Allow: allow, Own: egress.InterfaceAddrs(30 * time.Second)}
}

// Serve mounts the flist read-only on cfg.Mountpoint and serves it until ctx
// ends (SIGTERM) or the mount goes away, then unmounts. It is the body of
// the daemon process the module starts; blocks come from the flist's
// routes, read through the node's egress policy (cfg.EgressAllow).
func Serve(ctx context.Context, cfg DaemonConfig, log *slog.Logger) error {
	m, err := flist.Open(ctx, cfg.Meta)
	if err != nil {
		return err
	}
	store, err := flist.NewRouter(m.Routes, flist.StoreOptions{Egress: daemonPolicy(cfg.EgressAllow)})
	if err != nil {
		return fmt.Errorf("opening the stores of %s: %w", cfg.Meta, err)
	}
	defer store.Close()
	cache, err := flist.NewCache(cfg.CacheDir, cfg.CacheSize)
	if err != nil {
		return err
	}
	mnt, err := flist.MountFS(cfg.Mountpoint, m, flist.MountConfig{Store: store, Cache: cache}, log)
	if err != nil {
		return err
	}
	log.Info("flist_mounted", "meta", cfg.Meta, "dir", cfg.Mountpoint)
	err = mnt.Serve(ctx)
	s := mnt.FS.Stats()
	log.Info("flist_unmounted", "dir", cfg.Mountpoint, "fetched", s.Fetched, "cache_hits", s.CacheHits, "errors", s.Errors)
	return err
}

// marks tell a daemon's command line apart from any other process's.
func marks(dir string) []string { return []string{"flist", "mount", dir} }

// roHealthy reports whether dir is a live FUSE mount; dead is set when a
// FUSE mount is there but its server is gone.
func (m *Module) roHealthy(dir string) (healthy, dead bool, err error) {
	e, ok, err := m.entryAt(dir)
	if err != nil || !ok {
		return false, false, err
	}
	if !strings.HasPrefix(e.FSType, "fuse") {
		return false, false, fmt.Errorf("%s: %w (%s)", dir, ErrTargetBusy, e.FSType)
	}
	magic, err := m.mnt.Magic(dir)
	if errors.Is(err, mount.ErrDisconnected) {
		return false, true, nil
	}
	if err != nil {
		return false, true, nil
	}
	return magic == mount.MagicFUSE, magic != mount.MagicFUSE, nil
}

// ensureRO makes sure the flist's read-only mount is served, re-using a live
// one (made by this or an earlier node process) and replacing a dead one.
// It returns the pid of the serving daemon (0 when unknown). The flist's
// lock is held.
func (m *Module) ensureRO(ctx context.Context, hash string) (int, error) {
	dir := m.roDir(hash)
	healthy, dead, err := m.roHealthy(dir)
	if err != nil {
		return 0, err
	}
	pid := m.readPid(hash)
	if healthy {
		if !daemon.Alive(pid, marks(dir)...) {
			pid = 0 // served, by a daemon we lost track of
		}
		return pid, nil
	}
	if dead {
		m.log.Warn("flist_mount_dead", "hash", hash, "pid", pid)
	}
	// Whatever is left (a daemon stuck, a dead mount) goes first.
	if err := daemon.Stop(pid, 5*time.Second, marks(dir)...); err != nil {
		return 0, err
	}
	if err := m.detachAll(dir); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("creating mount point: %w", err)
	}
	return m.startDaemon(ctx, hash)
}

// detachAll lazily unmounts everything stacked on dir.
func (m *Module) detachAll(dir string) error {
	for i := 0; i < 8; i++ {
		_, ok, err := m.entryAt(dir)
		if err != nil || !ok {
			return err
		}
		if err := m.mnt.Detach(dir); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: still mounted after detaching", dir)
}

// startDaemon starts `zos flist mount` for the flist and waits until its
// FUSE mount answers.
func (m *Module) startDaemon(ctx context.Context, hash string) (int, error) {
	dir, logPath := m.roDir(hash), m.logPath(hash)
	args := []string{"flist", "mount", "--meta", m.flPath(hash), "--cache", m.cfg.CacheDir,
		"--cache-size", strconv.FormatInt(m.cfg.CacheSize, 10)}
	args = append(append(args, m.egressArgs()...), dir)
	_ = os.Remove(logPath) // the log holds the current daemon's output only
	p, err := daemon.Start(m.cfg.Binary, args, logPath)
	if err != nil {
		return 0, err
	}
	if err := atomicfile.WriteFile(m.pidPath(hash), []byte(strconv.Itoa(p.Pid)+"\n"), 0o600); err != nil {
		_ = daemon.Kill(p.Pid, marks(dir)...)
		return 0, fmt.Errorf("writing pid file: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		healthy, _, err := m.roHealthy(dir)
		if err == nil && healthy {
			m.log.Info("flist_daemon_started", "hash", hash, "pid", p.Pid)
			return p.Pid, nil
		}
		select {
		case <-p.Done():
			_ = m.detachAll(dir)
			return 0, fmt.Errorf("flist daemon %s exited: %v: %s", m.cfg.Binary, p.Err(), logTail(logPath))
		case <-ctx.Done():
			_ = daemon.Stop(p.Pid, 2*time.Second, marks(dir)...)
			_ = m.detachAll(dir)
			return 0, fmt.Errorf("waiting for flist daemon %d to mount %s: %w: %s", p.Pid, dir, ctx.Err(), logTail(logPath))
		case <-tick.C:
		}
	}
}

// stopRO stops the flist's daemon, removes its mount, mount point and pid
// file. The flist's lock is held.
func (m *Module) stopRO(hash string) error {
	dir := m.roDir(hash)
	if err := daemon.Stop(m.readPid(hash), 5*time.Second, marks(dir)...); err != nil {
		return err
	}
	// The daemon unmounts on SIGTERM; a dead or foreign-served mount may
	// still be there.
	if err := m.detachAll(dir); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing mount point: %w", err)
	}
	for _, p := range []string{m.pidPath(hash), m.logPath(hash)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readPid reads the flist's pid file (0 when missing or bad).
func (m *Module) readPid(hash string) int {
	s, err := readSmall(m.pidPath(hash))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return pid
}

// logTail returns the end of a daemon's log, for errors.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no output)"
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2048 {
		s = "..." + s[len(s)-2048:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
