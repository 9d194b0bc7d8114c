package zdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/wait"
)

// DefaultNamespace always exists.
const DefaultNamespace = "default"

// NamespaceOptions are the settable properties of a namespace.
type NamespaceOptions struct {
	MaxSize  uint64 // bytes of live data; 0 is unlimited
	Mode     string // "user" or "seq"; empty means the store's mode
	Password string // empty means none
	Public   bool   // readable without the password
}

// NamespaceInfo describes a namespace.
type NamespaceInfo struct {
	Name        string
	MaxSize     uint64
	DataSize    uint64 // bytes of live payloads
	IndexSize   uint64 // bytes of index files
	Entries     uint64
	Mode        Mode
	Public      bool
	HasPassword bool
	Worm        bool
	Locked      bool
	Frozen      bool
	Paused      bool // writes refused: the contract is in its grace period
}

// Store is the set of namespaces under one data and one index directory
// (one per HDD on a node).
type Store struct {
	cfg Config
	log *slog.Logger

	mu         sync.RWMutex // guards namespaces and closed
	namespaces map[string]*namespace
	closed     bool

	stop context.CancelFunc // ends syncLoop
	done chan struct{}      // closed when syncLoop returned
}

// Open loads (or creates) the store in cfg.DataDir and cfg.IndexDir.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid zdb config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, log: log.With("component", "zdb", "data", cfg.DataDir),
		namespaces: map[string]*namespace{}, done: make(chan struct{})}
	for _, d := range []string{cfg.DataDir, cfg.IndexDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	names, err := namespaceDirs(cfg.DataDir, cfg.IndexDir)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for _, name := range names {
		ns, err := loadNamespace(&s.cfg, s.log, name)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("loading namespace %s: %w", name, err)
		}
		s.namespaces[name] = ns
	}
	if s.namespaces[DefaultNamespace] == nil {
		ns, err := createNamespace(&s.cfg, s.log, DefaultNamespace, nsSettings{Public: true, Mode: cfg.Mode})
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("creating default namespace: %w", err)
		}
		s.namespaces[DefaultNamespace] = ns
	}
	s.log.Info("store_opened", "namespaces", len(s.namespaces), "duration", time.Since(start))
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.syncLoop(ctx)
	return s, nil
}

// namespaceDirs lists the namespace directories of the data and index roots.
func namespaceDirs(roots ...string) ([]string, error) {
	seen := map[string]bool{}
	for _, root := range roots {
		ents, err := os.ReadDir(root)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", root, err)
		}
		for _, e := range ents {
			if e.IsDir() && validName(e.Name()) == nil {
				seen[e.Name()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func validName(name string) error {
	if name == "" || len(name) > MaxNamespaceLen || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return ErrBadName
	}
	for _, c := range []byte(name) {
		if c < 0x21 || c == '/' || c == '\\' || c >= 0x7f {
			return ErrBadName
		}
	}
	return nil
}

// syncLoop fsyncs written namespaces in the background.
func (s *Store) syncLoop(ctx context.Context) {
	defer close(s.done)
	wait.Every(ctx, s.cfg.SyncInterval, s.syncAll)
}

func (s *Store) syncAll() {
	for _, ns := range s.list() {
		ns.mu.RLock()
		w, gone, unwritten := ns.writeSeq, ns.gone, len(ns.ipend) > 0
		ns.mu.RUnlock()
		ns.syncMu.Lock()
		pending := ns.syncedSeq < w || unwritten
		ns.syncMu.Unlock()
		if gone || !pending {
			continue
		}
		if err := ns.syncTo(^uint64(0)); err != nil && !errors.Is(err, ErrNamespaceGone) {
			s.log.Warn("sync_failed", "namespace", ns.name, "err", err)
		}
	}
}

func (s *Store) list() []*namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*namespace, 0, len(s.namespaces))
	for _, ns := range s.namespaces {
		out = append(out, ns)
	}
	return out
}

// Close syncs and closes every namespace.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	<-s.done
	s.syncAll()
	return s.closeAll()
}

func (s *Store) closeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, ns := range s.namespaces {
		ns.mu.Lock()
		if err := ns.closeFiles(); err != nil && first == nil {
			first = fmt.Errorf("closing namespace %s: %w", ns.name, err)
		}
		ns.gone = true
		ns.mu.Unlock()
	}
	return first
}

// lookup returns the namespace or nil.
func (s *Store) lookup(name string) *namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.namespaces[name]
}

// NamespaceCreate creates a namespace with the given options.
func (s *Store) NamespaceCreate(name string, o NamespaceOptions) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("creating namespace %q: %w", name, err)
	}
	mode := s.cfg.Mode
	if o.Mode != "" {
		m, err := ParseMode(o.Mode)
		if err != nil {
			return fmt.Errorf("creating namespace %s: %w", name, err)
		}
		mode = m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("store closed")
	}
	if s.namespaces[name] != nil {
		return fmt.Errorf("creating namespace %s: %w", name, ErrNamespaceExists)
	}
	ns, err := createNamespace(&s.cfg, s.log, name, nsSettings{
		Password: o.Password, Public: o.Public, MaxSize: o.MaxSize, Mode: mode})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	s.namespaces[name] = ns
	s.log.Info("namespace_created", "namespace", name, "mode", mode)
	return nil
}

// NamespaceUpdate changes size, password (empty clears it) and public flag.
// Changing the mode is an error.
func (s *Store) NamespaceUpdate(name string, o NamespaceOptions) error {
	ns := s.lookup(name)
	if ns == nil {
		return fmt.Errorf("updating namespace %s: %w", name, ErrNotFound)
	}
	return ns.update(func(st *nsSettings) error {
		if o.Mode != "" {
			m, err := ParseMode(o.Mode)
			if err != nil {
				return err
			}
			if m != st.Mode {
				return ErrModeChange
			}
		}
		st.MaxSize, st.Password, st.Public = o.MaxSize, o.Password, o.Public
		return nil
	})
}

// NamespacePause makes a namespace refuse writes with ErrPaused (reads go
// on), or take them again; the state is kept in its settings, so it
// survives a restart. Pausing a paused namespace changes nothing.
func (s *Store) NamespacePause(name string, paused bool) error {
	ns := s.lookup(name)
	if ns == nil {
		return fmt.Errorf("pausing namespace %s: %w", name, ErrNotFound)
	}
	return ns.update(func(st *nsSettings) error { st.Paused = paused; return nil })
}

// update changes and persists the settings.
func (ns *namespace) update(change func(*nsSettings) error) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.gone {
		return ErrNamespaceGone
	}
	st := ns.settings
	if err := change(&st); err != nil {
		return err
	}
	if st.Mode != ns.settings.Mode {
		if ns.keys.len() > 0 || ns.writeSeq > 0 || ns.cur.dataSize > fileHeaderSize {
			return ErrModeChange
		}
	}
	old := ns.settings
	ns.settings = st
	if err := ns.saveSettings(); err != nil {
		ns.settings = old
		return err
	}
	if st.Mode != old.Mode {
		ns.newKeyIndex(0)
	}
	return nil
}

// NamespaceDelete removes a namespace and its files.
func (s *Store) NamespaceDelete(name string) error {
	if name == DefaultNamespace {
		return ErrDefaultNS
	}
	s.mu.Lock()
	ns := s.namespaces[name]
	if ns == nil {
		s.mu.Unlock()
		return fmt.Errorf("deleting namespace %s: %w", name, ErrNotFound)
	}
	delete(s.namespaces, name)
	s.mu.Unlock()
	ns.mu.Lock()
	ns.gone = true
	err := ns.closeFiles()
	ns.mu.Unlock()
	if err != nil {
		s.log.Warn("closing_namespace", "namespace", name, "err", err)
	}
	for _, d := range []string{ns.dataDir, ns.indexDir} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("deleting namespace %s: %w", name, err)
		}
	}
	s.log.Info("namespace_deleted", "namespace", name)
	return nil
}

// Namespace describes one namespace; ErrNotFound when absent.
func (s *Store) Namespace(name string) (NamespaceInfo, error) {
	ns := s.lookup(name)
	if ns == nil {
		return NamespaceInfo{}, fmt.Errorf("namespace %s: %w", name, ErrNotFound)
	}
	return ns.info(), nil
}

// Namespaces describes every namespace, sorted by name.
func (s *Store) Namespaces() ([]NamespaceInfo, error) {
	list := s.list()
	out := make([]NamespaceInfo, 0, len(list))
	for _, ns := range list {
		out = append(out, ns.info())
	}
	slices.SortFunc(out, func(a, b NamespaceInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DiskFree reports the free bytes of the data directory's file system.
func (s *Store) DiskFree() uint64 { return diskFree(s.cfg.DataDir) }

func diskFree(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}

// Dirs returns the data and index directories.
func (s *Store) Dirs() (data, index string) { return s.cfg.DataDir, s.cfg.IndexDir }
