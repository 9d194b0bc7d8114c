package primitives

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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

// NewZDBManager opens a store on every existing zdb device and adds it to
// server. ips returns the addresses reported to users, port the port the
// server listens on.
func NewZDBManager(st ZDBDevices, server *zdb.Server, ips func() []string, port uint, log *slog.Logger) (*ZDBManager, error) {
	m := &ZDBManager{storage: st, server: server, ips: ips, port: port, log: log, stores: map[string]*zdb.Store{}}
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

// find returns the store that holds namespace name.
func (m *ZDBManager) find(name string) (*zdb.Store, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.stores {
		if _, err := s.Namespace(name); err == nil {
			return s, true
		}
	}
	return nil, false
}

// free returns how many bytes of a store's device its namespaces have not
// claimed.
func free(s *zdb.Store, size uint64) uint64 {
	nss, err := s.Namespaces()
	if err != nil {
		return 0
	}
	var used uint64
	for _, ns := range nss {
		used += ns.MaxSize
	}
	if used >= size {
		return 0
	}
	return size - used
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
		if f := free(s, d.Size); f >= size && f > bestFree {
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
		return nil, fmt.Errorf("%w: no HDD has %d bytes free for a zdb namespace", storage.ErrNoSpace, size)
	}
	d, err := m.storage.DeviceAllocate(want)
	if err != nil {
		return nil, err
	}
	return m.open(d)
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
	name := string(wl.ID)
	m.place.Lock()
	defer m.place.Unlock()
	if _, ok := m.find(name); ok {
		return m.result(name), nil
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

// Update changes size, password and public; a mode change is refused.
func (m *ZDBManager) Update(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.ZDB](wl)
	if err != nil {
		return nil, err
	}
	name := string(wl.ID)
	s, ok := m.find(name)
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
	if err := s.NamespaceUpdate(name, options(data)); err != nil {
		return nil, provision.Unchanged(fmt.Errorf("updating namespace %s: %w", name, err))
	}
	return m.result(name), nil
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
