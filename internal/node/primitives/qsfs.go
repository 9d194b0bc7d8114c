package primitives

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/qsfs/fs"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/qsfs"
	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
)

// QSFSConfig configures the qsfs manager; zero values take the defaults.
type QSFSConfig struct {
	// Root holds the mount points, one directory per workload.
	Root string
	// MetricsIP is the address the metrics listeners bind (the node's
	// tenant-reachable address; 127.0.0.1 when empty).
	MetricsIP string
	// Egress is the node's policy: the backends are addresses a tenant
	// named and are dialled through it (nil: the zero policy).
	Egress *egress.Policy
	// RepairEvery is how often each qsfs runs a repair (10 min).
	RepairEvery time.Duration
	// ChunkSize, BlockSize and Timeout tune the engine and the file system
	// (their defaults when 0; tests make them small).
	ChunkSize int
	BlockSize int
	Timeout   time.Duration
}

func (c *QSFSConfig) defaults() {
	if c.MetricsIP == "" {
		c.MetricsIP = "127.0.0.1"
	}
	if c.Egress == nil {
		c.Egress = &egress.Policy{}
	}
	if c.RepairEvery <= 0 {
		c.RepairEvery = 10 * time.Minute
	}
}

// QSFSManager provisions qsfs workloads: the qsfs engine (internal/qsfs)
// over the workload's zdb backends, dialled through the node's egress
// policy, and the qsfs file system (internal/node/qsfs/fs) over it,
// mounted on Root/<workload id> with its cache on a volume of the
// workload's cache size. Each qsfs serves Prometheus metrics and runs a
// repair every RepairEvery. A zmachine mounting the qsfs shares the mount
// into the VM (MountPath).
//
// The file system is served by this process: when the node process stops,
// Close flushes and unmounts every qsfs, and the next start mounts them
// again (Provision of a workload that ran before), from the cache and the
// backends.
type QSFSManager struct {
	cfg  QSFSConfig
	vols Volumes
	log  *slog.Logger

	mu      sync.Mutex // guards running and closed
	running map[gridtypes.WorkloadID]*qsfsInstance
	closed  bool
}

var (
	_ provision.Manager = (*QSFSManager)(nil)
	_ provision.Updater = (*QSFSManager)(nil)
	_ QSFSMounts        = (*QSFSManager)(nil)
)

// qsfsInstance is one mounted qsfs.
type qsfsInstance struct {
	id       gridtypes.WorkloadID
	dir      string // mount point
	volume   string
	cache    gridtypes.Unit
	store    *swapStore
	fs       *fs.FS
	metrics  *qsfsMetrics
	endpoint string
	stop     context.CancelFunc // stops the repair loop
	done     chan struct{}      // closed when the repair loop returned

	mu   sync.Mutex // guards conf
	conf gridtypes.QuantumSafeConfig
}

// NewQSFSManager returns the manager; vols makes the cache volumes (the
// node's storage, on its SSD pool).
func NewQSFSManager(cfg QSFSConfig, vols Volumes, log *slog.Logger) *QSFSManager {
	cfg.defaults()
	return &QSFSManager{cfg: cfg, vols: vols, log: log, running: map[gridtypes.WorkloadID]*qsfsInstance{}}
}

// qsfsVolume is the name of a qsfs's cache volume.
func qsfsVolume(id gridtypes.WorkloadID) string { return "qsfs-" + string(id) }

// MountPath is where qsfs workload id is mounted.
func (m *QSFSManager) MountPath(id gridtypes.WorkloadID) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.running[id]
	if !ok {
		return "", fmt.Errorf("qsfs %s is not mounted", id)
	}
	return in.dir, nil
}

// engineConfig converts the workload's config for the engine, with the
// node's dialer.
func (m *QSFSManager) engineConfig(q gridtypes.QuantumSafeConfig) (qsfs.Config, error) {
	c, err := qsfs.ConfigFrom(q)
	if err != nil {
		return qsfs.Config{}, err
	}
	c.Dialer = m.cfg.Egress.Dialer(&net.Dialer{Timeout: 10 * time.Second})
	c.Quiet = true
	c.ChunkSize = m.cfg.ChunkSize
	c.Timeout = m.cfg.Timeout
	if err := c.Validate(); err != nil {
		return qsfs.Config{}, err
	}
	return c, nil
}

// probeObject is written at every mount: a write the backends must
// acknowledge, so that too few live backends or wrong passwords fail the
// workload rather than the first fsync.
const probeObject = "qsfs-probe"

// openStore builds the engine and checks that it can write.
func (m *QSFSManager) openStore(ctx context.Context, q gridtypes.QuantumSafeConfig) (*qsfs.Store, error) {
	c, err := m.engineConfig(q)
	if err != nil {
		return nil, err
	}
	s, err := qsfs.New(c, m.log)
	if err != nil {
		return nil, err
	}
	probe := make([]byte, 64)
	if _, err := rand.Read(probe); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Put(ctx, probeObject, probe); err != nil {
		s.Close()
		return nil, fmt.Errorf("the backends do not take a write: %w", err)
	}
	return s, nil
}

// Provision mounts the qsfs: a new one, or one that ran before (a node
// restart), from its cache volume and the backends. Bad config, too few
// live backends, wrong passwords or keys: an error and nothing mounted.
func (m *QSFSManager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.QuantumSafeFS](wl)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	in, ok := m.running[wl.ID]
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, errors.New("the qsfs manager is closed")
	}
	if ok {
		return in.result(), nil
	}
	in, err = m.mount(ctx, wl.ID, data)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.running[wl.ID] = in
	m.mu.Unlock()
	return in.result(), nil
}

func (in *qsfsInstance) result() gridtypes.QuantumSafeFSResult {
	return gridtypes.QuantumSafeFSResult{Path: in.dir, MetricsEndpoint: in.endpoint}
}

// mount builds the engine, the cache volume, the mount and the metrics
// listener; on error it undoes what it made.
func (m *QSFSManager) mount(ctx context.Context, id gridtypes.WorkloadID, data *gridtypes.QuantumSafeFS) (_ *qsfsInstance, err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	bound, err := m.localBound(data)
	if err != nil {
		return nil, err
	}
	s, err := m.openStore(ctx, data.Config)
	if err != nil {
		return nil, err
	}
	store := &swapStore{s: s}
	undo = append(undo, store.Close)

	name := qsfsVolume(id)
	vol, err := m.vols.VolumeLookup(name)
	if errors.Is(err, storage.ErrNotFound) {
		// New, or a cache that is gone: the backends hold the data.
		if vol, err = m.vols.VolumeCreate(name, uint64(data.Cache)); err != nil {
			return nil, fmt.Errorf("creating the cache volume: %w", err)
		}
		undo = append(undo, func() { m.vols.VolumeDelete(name) })
	} else if err != nil {
		return nil, fmt.Errorf("looking up the cache volume: %w", err)
	}
	cacheDir := filepath.Join(vol.Path, "cache")
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, err
	}
	state, err := loadMetricsState(vol.Path)
	if err != nil {
		return nil, err
	}

	dir := filepath.Join(m.cfg.Root, string(id))
	// A node process that crashed left its FUSE mount dead: detach it.
	if err := sysfuse.LazyUnmount(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making the mount point: %w", err)
	}
	f, err := fs.Mount(fs.Config{
		CacheDir: cacheDir, CacheSize: bound, BlockSize: m.cfg.BlockSize,
		IsNotFound: func(err error) bool { return errors.Is(err, qsfs.ErrNotFound) },
	}, store, dir, m.log)
	if err != nil {
		return nil, fmt.Errorf("mounting: %w", err)
	}
	undo = append(undo, func() { f.Abort() })

	in := &qsfsInstance{id: id, dir: dir, volume: name, cache: data.Cache, store: store, fs: f, conf: data.Config}
	in.metrics, err = serveMetrics(m.cfg.MetricsIP, state, in, m.log)
	if err != nil {
		return nil, err
	}
	if err := state.save(vol.Path); err != nil {
		in.metrics.close()
		return nil, err
	}
	in.endpoint = in.metrics.endpoint
	rctx, stop := context.WithCancel(context.Background())
	in.stop, in.done = stop, make(chan struct{})
	go m.repairLoop(rctx, in)
	m.log.Info("qsfs_mounted", "workload", id, "path", dir, "metrics", in.endpoint)
	return in, nil
}

// blockSize is the file system's block size.
func (m *QSFSManager) blockSize() int64 {
	if m.cfg.BlockSize == 0 {
		return 1 << 20 // the file system's default
	}
	return int64(m.cfg.BlockSize)
}

// cacheBound is the bytes of blocks the file system keeps in a cache
// volume of size: an eighth of it, at least two blocks, is left for the
// file system's own use, so the volume's quota is never what fails a
// write.
func (m *QSFSManager) cacheBound(size gridtypes.Unit) int64 {
	return int64(size) - max(int64(size)/8, 2*m.blockSize())
}

// localBound is the bytes of data a qsfs keeps on the node: its cache
// volume's bound, or config.max_zdb_data_dir_size (MiB, the original's
// bound on its local 0-db's data) when that is lower and set. The file
// system holds no more: clean blocks (on the backends) are evicted, and
// writers wait for uploads. A bound under four blocks is refused.
func (m *QSFSManager) localBound(data *gridtypes.QuantumSafeFS) (int64, error) {
	bound := m.cacheBound(data.Cache)
	what := fmt.Sprintf("cache: %d bytes leave", data.Cache)
	if mib := data.Config.MaxZDBDataDirSize; mib > 0 && int64(mib)<<20 < bound {
		bound = int64(mib) << 20
		what = fmt.Sprintf("config.max_zdb_data_dir_size: %d MiB is", mib)
	}
	if min := 4 * m.blockSize(); bound < min {
		return 0, fmt.Errorf("%s less local data than four blocks (%d bytes)", what, min)
	}
	return bound, nil
}

// repairLoop repairs the qsfs every RepairEvery until stopped.
func (m *QSFSManager) repairLoop(ctx context.Context, in *qsfsInstance) {
	defer close(in.done)
	t := time.NewTicker(m.cfg.RepairEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := in.store.Repair(ctx)
		in.metrics.noteRepair(rep, err)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("qsfs_repair_failed", "workload", in.id, "err", err)
		} else if rep.ShardsRewritten > 0 || rep.Unrecoverable > 0 || rep.MetaRewritten > 0 {
			m.log.Info("qsfs_repaired", "workload", in.id, "rewritten", rep.ShardsRewritten,
				"unrecoverable", rep.Unrecoverable, "meta_rewritten", rep.MetaRewritten)
		}
	}
}

// unmount stops the repair loop and the metrics listener, then flushes
// and unmounts (flush=false: unmounts without flushing, as a crash). The
// engine is closed either way; a failed flush is returned.
func (in *qsfsInstance) unmount(flush bool) error {
	in.stop()
	<-in.done
	in.metrics.close()
	var err error
	if flush {
		if err = in.fs.Unmount(); err != nil {
			err = fmt.Errorf("changes since the last sync are lost: %w", err)
			in.fs.Abort()
		}
	} else {
		in.fs.Abort()
	}
	in.store.Close()
	return err
}

// Deprovision flushes the qsfs to its backends, unmounts it and deletes
// its cache volume. The backends keep the data: the same config mounted
// again (here or on another node) finds every file. When the flush fails
// (backends down) everything is removed all the same (the workload is
// gone) and the error says what was lost.
func (m *QSFSManager) Deprovision(_ context.Context, wl *provision.Workload) error {
	m.mu.Lock()
	in, ok := m.running[wl.ID]
	delete(m.running, wl.ID)
	m.mu.Unlock()
	var errs []error
	dir := filepath.Join(m.cfg.Root, string(wl.ID))
	if ok {
		if err := in.unmount(true); err != nil {
			errs = append(errs, err)
		}
	} else if err := sysfuse.LazyUnmount(dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := m.vols.VolumeDelete(qsfsVolume(wl.ID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		errs = append(errs, fmt.Errorf("deleting the cache volume: %w", err))
	}
	return errors.Join(errs...)
}

// Update applies a change of backends: the engine is replaced by one over
// the new backends under the mounted file system, and a repair moves the
// shards off the removed backends (rebuilt from the others) before the
// new engine serves. Refused, leaving the qsfs as it was: any other
// change (keys, shards, prefix, compression, cache), removing more data
// backends at once than the config survives losing, or replacing a
// majority of the meta backends.
func (m *QSFSManager) Update(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.QuantumSafeFS](wl)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	in, ok := m.running[wl.ID]
	m.mu.Unlock()
	if !ok {
		return nil, provision.Unchanged(fmt.Errorf("qsfs %s is not mounted", wl.ID))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if data.Cache != in.cache {
		return nil, provision.Unchanged(fmt.Errorf("the cache size cannot change (%d to %d bytes); only backends can", in.cache, data.Cache))
	}
	if err := backendChange(in.conf, data.Config); err != nil {
		return nil, provision.Unchanged(err)
	}
	newCfg, err := m.engineConfig(data.Config)
	if err != nil {
		return nil, provision.Unchanged(err)
	}
	oldCfg, err := m.engineConfig(in.conf)
	if err != nil {
		return nil, provision.Unchanged(err)
	}
	// Uploads in flight finish first; then no call runs while the engines
	// change, so only one ever writes the metadata.
	if err := in.fs.Sync(ctx); err != nil {
		return nil, provision.Unchanged(fmt.Errorf("flushing before the change: %w", err))
	}
	var uerr error
	in.store.replace(func(old *qsfs.Store) *qsfs.Store {
		old.Close()
		s, err := qsfs.New(newCfg, m.log)
		if err == nil {
			var rep qsfs.RepairReport
			rep, err = s.Repair(ctx)
			in.metrics.noteRepair(rep, err)
			if err == nil && (rep.Unrecoverable > 0 || rep.Degraded > 0) {
				err = fmt.Errorf("moving the data: %d chunks unrecoverable, %d not spread enough over the new backends", rep.Unrecoverable, rep.Degraded)
			}
			if err == nil {
				m.log.Info("qsfs_backends_replaced", "workload", wl.ID, "shards_moved", rep.ShardsRewritten)
				return s
			}
			s.Close()
		}
		uerr = err
		// Back to the old backends, with the metadata as they hold it now.
		back, err := qsfs.New(oldCfg, m.log)
		if err != nil {
			uerr = errors.Join(uerr, fmt.Errorf("reopening the old backends: %w", err))
			return old // closed: calls fail, nothing is written
		}
		return back
	})
	if uerr != nil {
		return nil, provision.Unchanged(fmt.Errorf("replacing the backends: %w", uerr))
	}
	in.conf = data.Config
	return in.result(), nil
}

// backendChange checks that from -> to changes only backends, and that
// the data on the removed ones can be rebuilt from the others.
func backendChange(from, to gridtypes.QuantumSafeConfig) error {
	a, b := from, to
	a.Groups, b.Groups, a.Meta.Config.Backends, b.Meta.Config.Backends = nil, nil, nil, nil
	if !reflect.DeepEqual(a, b) {
		return errors.New("only the backends of a qsfs can change (groups and meta backends); keys, shards, prefix and compression cannot")
	}
	id := func(z gridtypes.ZdbBackend) string { return z.Address + "/" + z.Namespace }
	kept := map[string]bool{}
	for _, g := range to.Groups {
		for _, z := range g.Backends {
			kept[id(z)] = true
		}
	}
	removed, groups := 0, 0
	for _, g := range from.Groups {
		lost := false
		for _, z := range g.Backends {
			if !kept[id(z)] {
				removed++
				lost = true
			}
		}
		if lost {
			groups++
		}
	}
	if removed > int(from.RedundantNodes) && groups > int(from.RedundantGroups) {
		return fmt.Errorf("removing %d data backends in %d groups at once loses data: the config survives losing %d backends or %d groups; replace fewer per update",
			removed, groups, from.RedundantNodes, from.RedundantGroups)
	}
	oldMeta := map[string]bool{}
	for _, z := range from.Meta.Config.Backends {
		oldMeta[id(z)] = true
	}
	keptMeta := 0
	for _, z := range to.Meta.Config.Backends {
		if oldMeta[id(z)] {
			keptMeta++
		}
	}
	if n := len(to.Meta.Config.Backends); keptMeta < n/2+1 {
		return fmt.Errorf("only %d of the %d new meta backends hold the metadata now; a majority must stay", keptMeta, n)
	}
	return nil
}

// Close flushes and unmounts every qsfs (the node process stops); the next
// start mounts them again.
func (m *QSFSManager) Close() error {
	m.mu.Lock()
	m.closed = true
	running := m.running
	m.running = map[gridtypes.WorkloadID]*qsfsInstance{}
	m.mu.Unlock()
	var errs []error
	for id, in := range running {
		if err := in.unmount(true); err != nil {
			errs = append(errs, fmt.Errorf("qsfs %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// metricsState is what a qsfs's metrics listener keeps across restarts,
// in its cache volume: the secret path and the port.
type metricsState struct {
	Token string `json:"token"`
	Port  int    `json:"port"`
}

const metricsStateFile = "metrics.json"

func loadMetricsState(volDir string) (*metricsState, error) {
	st := &metricsState{}
	b, err := os.ReadFile(filepath.Join(volDir, metricsStateFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, st); err == nil && len(st.Token) == 32 {
			return st, nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	return &metricsState{Token: hex.EncodeToString(tok)}, nil
}

func (s *metricsState) save(volDir string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(volDir, metricsStateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(volDir, metricsStateFile))
}

func (s *metricsState) addr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(s.Port)) }
