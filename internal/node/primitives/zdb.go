package primitives

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"path/filepath"
	"strings"
	"sync"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
)

// ZDBDevices is what the zdb manager needs of storage.
type ZDBDevices interface {
	DeviceAllocate(size uint64) (storage.Device, error)
	Devices() ([]storage.Device, error)
	// DeviceFree is how many bytes can really still be written into a
	// device.
	DeviceFree(id string) (uint64, error)
	Pools() []storage.PoolInfo
}

// ZDBManager provisions zdb workloads as namespaces of the node's 0-db
// engine: one store per HDD zdb device, all served on one port.
type ZDBManager struct {
	storage ZDBDevices
	server  *zdb.Server
	ips     func() []string
	port    uint
	log     *slog.Logger

	mu     sync.Mutex // guards stores
	stores map[string]*zdb.Store
	// place serializes choosing a device and creating a namespace there:
	// two first namespaces at once would both see no device (the first
	// one's still being made) and the second would find no room.
	place sync.Mutex
}

var (
	_ provision.Manager = (*ZDBManager)(nil)
	_ provision.Updater = (*ZDBManager)(nil)
)

// ZDBConfig configures a ZDBManager.
type ZDBConfig struct {
	Port uint // the port server listens on, reported to users
}

// NewZDBManager opens a store on every existing zdb device and adds it to
// server. ips returns the addresses reported to users.
func NewZDBManager(cfg ZDBConfig, st ZDBDevices, server *zdb.Server, ips func() []string, log *slog.Logger) (*ZDBManager, error) {
	m := &ZDBManager{storage: st, server: server, ips: ips, port: cfg.Port, log: log, stores: map[string]*zdb.Store{}}
	devs, err := st.Devices()
	if err != nil {
		return nil, fmt.Errorf("listing zdb devices: %w", err)
	}
	for _, d := range devs {
		if _, err := m.open(d); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Close closes every store.
func (m *ZDBManager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, s := range m.stores {
		errs = append(errs, s.Close())
	}
	m.stores = map[string]*zdb.Store{}
	return errors.Join(errs...)
}

func (m *ZDBManager) open(d storage.Device) (*zdb.Store, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.stores[d.ID]; ok {
		return s, nil
	}
	s, err := zdb.Open(zdb.Config{DataDir: filepath.Join(d.Path, "data"), IndexDir: filepath.Join(d.Path, "index"), Sync: zdb.SyncAlways}, m.log.With("zdb_device", d.ID))
	if err != nil {
		return nil, fmt.Errorf("opening zdb store on device %s: %w", d.ID, err)
	}
	m.stores[d.ID] = s
	m.server.AddStore(s)
	return s, nil
}

// DeviceOf returns the id of the zdb device (its pool's name) that holds
// namespace name.
func (m *ZDBManager) DeviceOf(name string) (string, bool) {
	_, id, ok := m.findDevice(name)
	return id, ok
}

// FailDevice stops serving the namespaces of a zdb device whose pool
// failed: its store is closed, so that every later read or write of them
// answers an error instead of acknowledging a write the dying disk may
// lose. The node marks their workloads failed.
func (m *ZDBManager) FailDevice(id string) error {
	m.mu.Lock()
	s, ok := m.stores[id]
	delete(m.stores, id)
	m.mu.Unlock()
	if !ok {
		return nil
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("closing the zdb store of failed device %s: %w", id, err)
	}
	return nil
}

// failedPools describes the failed pools ("" when none).
func failedPools(pools []storage.PoolInfo) string {
	var s []string
	for _, p := range pools {
		if p.Broken != "" {
			s = append(s, fmt.Sprintf("pool %s failed: %s", p.Name, p.Broken))
		}
	}
	return strings.Join(s, "; ")
}

// find returns the store that holds namespace name.
func (m *ZDBManager) find(name string) (*zdb.Store, bool) {
	s, _, ok := m.findDevice(name)
	return s, ok
}

// findDevice returns the store that holds namespace name and the id of
// its device.
func (m *ZDBManager) findDevice(name string) (*zdb.Store, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.stores {
		if _, err := s.Namespace(name); err == nil {
			return s, id, true
		}
	}
	return nil, "", false
}

// claims sums what the namespaces of a store may hold (their sizes) and
// what they may still write (their sizes less their data), saturating.
func claims(s *zdb.Store) (claimed, unwritten uint64) {
	nss, err := s.Namespaces()
	if err != nil {
		return math.MaxUint64, math.MaxUint64
	}
	for _, ns := range nss {
		claimed = satAdd(claimed, ns.MaxSize)
		if ns.MaxSize > ns.DataSize {
			unwritten = satAdd(unwritten, ns.MaxSize-ns.DataSize)
		}
	}
	return claimed, unwritten
}

// free returns how many bytes of a store's device its namespaces have not
// claimed.
func free(s *zdb.Store, size uint64) uint64 {
	claimed, _ := claims(s)
	if claimed >= size {
		return 0
	}
	return size - claimed
}

// satAdd is a+b, or the largest uint64 when that overflows.
func satAdd(a, b uint64) uint64 {
	if s, carry := bits.Add64(a, b, 0); carry == 0 {
		return s
	}
	return math.MaxUint64
}

// pick returns a store with room for size bytes, allocating the device of an
// unused HDD pool (the whole pool) when none has room.
func (m *ZDBManager) pick(size uint64) (*zdb.Store, error) {
	devs, err := m.storage.Devices()
	if err != nil {
		return nil, err
	}
	var best *zdb.Store
	var bestFree uint64
	for _, d := range devs {
		s, err := m.open(d)
		if err != nil {
			return nil, err
		}
		if f := free(s, d.Size); f >= size && f > bestFree && fitsReally(s, size) {
			best, bestFree = s, f
		}
	}
	if best != nil {
		return best, nil
	}
	// The most free HDD pool without a device yet gives all its space.
	var want uint64
	for _, p := range m.storage.Pools() {
		if p.Type == storage.HDD && p.Broken == "" && p.Size > p.Used && p.Size-p.Used > want {
			used := false
			for _, d := range devs {
				if d.Pool == p.Name {
					used = true
				}
			}
			if !used {
				want = p.Size - p.Used
			}
		}
	}
	if want < size {
		note := ""
		if f := failedPools(m.storage.Pools()); f != "" {
			note = " (" + f + ")"
		}
		return nil, fmt.Errorf("%w: no HDD has %d bytes free for a zdb namespace%s", storage.ErrNoSpace, size, note)
	}
	d, err := m.storage.DeviceAllocate(want)
	if err != nil {
		return nil, err
	}
	s, err := m.open(d)
	if err != nil {
		return nil, err
	}
	if !fitsReally(s, size) {
		return nil, fmt.Errorf("%w: zdb device %s has %d bytes really free, not %d for a zdb namespace", storage.ErrNoSpace, d.ID, s.DiskFree(), size)
	}
	return s, nil
}

// fitsReally reports whether a new namespace of size bytes fits what the
// file system of store s really has free next to what its namespaces may
// still write. It asks statfs only (placing a namespace is frequent); a
// growth asks storage for the device's full account (room).
func fitsReally(s *zdb.Store, size uint64) bool {
	_, unwritten := claims(s)
	return satAdd(unwritten, size) <= s.DiskFree()
}

func (m *ZDBManager) result(name string) gridtypes.ZDBResult {
	return gridtypes.ZDBResult{Namespace: name, IPs: m.ips(), Port: m.port}
}

func options(data *gridtypes.ZDB) zdb.NamespaceOptions {
	return zdb.NamespaceOptions{MaxSize: data.Size, Mode: data.Mode, Password: data.Password, Public: data.Public}
}

// Provision creates the namespace (named after the workload id), or returns
// the existing one.
func (m *ZDBManager) Provision(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.ZDB](wl)
	if err != nil {
		return nil, err
	}
	if data.Size == 0 {
		return nil, errUnlimited
	}
	name := string(wl.ID)
	m.place.Lock()
	defer m.place.Unlock()
	if _, ok := m.find(name); ok {
		return m.result(name), nil
	}
	if ranBefore(wl) {
		why := "its zdb device is missing"
		if f := failedPools(m.storage.Pools()); f != "" {
			why += " (" + f + ")"
		}
		return nil, fmt.Errorf("namespace %s is gone and is not made again empty: %s", name, why)
	}
	s, err := m.pick(data.Size)
	if err != nil {
		return nil, err
	}
	if err := s.NamespaceCreate(name, options(data)); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return m.result(name), nil
}

// errUnlimited refuses a namespace of size 0, which 0-db reads as
// unlimited: it could fill the device that other tenants share.
var errUnlimited = errors.New("a zdb namespace needs a size (0 would be unlimited)")

// Update changes size, password and public. A mode change and a shrink
// (the namespace may hold more than the new size, as the original) are
// refused, and so is a growth the namespace's device cannot hold: the
// device is shared by every namespace on it, so the sizes of all of them
// must fit its size, and what they may still write must fit what is
// really free on it. A refused update leaves the namespace as it was.
func (m *ZDBManager) Update(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.ZDB](wl)
	if err != nil {
		return nil, err
	}
	name := string(wl.ID)
	// Growing and placing new namespaces take the same lock: two of them
	// must not both count the same free bytes.
	m.place.Lock()
	defer m.place.Unlock()
	s, dev, ok := m.findDevice(name)
	if !ok {
		return nil, fmt.Errorf("namespace %s not found", name)
	}
	info, err := s.Namespace(name)
	if err != nil {
		return nil, err
	}
	if string(info.Mode) != data.Mode {
		return nil, provision.Unchanged(fmt.Errorf("the mode of a zdb namespace cannot change (%s to %s)", info.Mode, data.Mode))
	}
	switch {
	case data.Size == 0:
		return nil, provision.Unchanged(errUnlimited)
	case data.Size < info.MaxSize:
		return nil, provision.Unchanged(fmt.Errorf("a zdb namespace cannot shrink (from %d to %d bytes)", info.MaxSize, data.Size))
	case data.Size > info.MaxSize:
		if err := m.room(s, dev, data.Size-info.MaxSize); err != nil {
			return nil, provision.Unchanged(fmt.Errorf("growing namespace %s from %d to %d bytes: %w", name, info.MaxSize, data.Size, err))
		}
	}
	if err := s.NamespaceUpdate(name, options(data)); err != nil {
		return nil, provision.Unchanged(fmt.Errorf("updating namespace %s: %w", name, err))
	}
	return m.result(name), nil
}

// room checks that the namespaces of store s on device dev can grow by
// grow bytes: against the device's size (what its namespaces claim) and
// against what is really free on it (what they may still write).
func (m *ZDBManager) room(s *zdb.Store, dev string, grow uint64) error {
	devs, err := m.storage.Devices()
	if err != nil {
		return err
	}
	var size uint64
	for _, d := range devs {
		if d.ID == dev {
			size = d.Size
		}
	}
	claimed, unwritten := claims(s)
	if f := free(s, size); grow > f {
		return fmt.Errorf("%w: %d more bytes wanted, the namespaces of zdb device %s claim %d of its %d bytes",
			storage.ErrNoSpace, grow, dev, claimed, size)
	}
	avail, err := m.storage.DeviceFree(dev)
	if err != nil {
		return err
	}
	if need := satAdd(unwritten, grow); need > avail {
		return fmt.Errorf("%w: %d more bytes wanted, zdb device %s has %d bytes really free and its namespaces may still write %d",
			storage.ErrNoSpace, grow, dev, avail, unwritten)
	}
	return nil
}

// Deprovision deletes the namespace and its data.
func (m *ZDBManager) Deprovision(_ context.Context, wl *provision.Workload) error {
	name := string(wl.ID)
	s, ok := m.find(name)
	if !ok {
		return nil
	}
	return s.NamespaceDelete(name)
}
