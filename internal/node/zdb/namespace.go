package zdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/zos-go/zos/internal/atomicfile"
)

const settingsFile = "zdb-namespace.json"

// nsSettings are the persisted properties of a namespace.
type nsSettings struct {
	Password string `json:"password,omitempty"`
	Public   bool   `json:"public"`
	MaxSize  uint64 `json:"maxsize"`
	Worm     bool   `json:"worm,omitempty"`
	Mode     Mode   `json:"mode"`
	Locked   bool   `json:"locked,omitempty"`
	Frozen   bool   `json:"frozen,omitempty"`
	// Paused refuses writes while the namespace's contract is in its
	// grace period (set by the node, not by any command).
	Paused bool `json:"paused,omitempty"`
}

// segment is one data file and its index file.
type segment struct {
	id        uint32
	data      *os.File
	index     *os.File
	dataSize  int64
	indexSize int64
	mm        segMap // read-only mapping of data, see mmap.go
}

// namespace is one set of keys. Its methods are safe for concurrent use.
type namespace struct {
	name     string
	dataDir  string
	indexDir string
	cfg      *Config
	log      *slog.Logger

	mu       sync.RWMutex // guards the fields below
	settings nsSettings
	keys     keyIndex
	dataSize uint64 // bytes of live payloads
	segs     map[uint32]*segment
	ids      []uint32 // segment ids, ascending
	cur      *segment // segment being appended to
	wbuf     []byte
	ipend    []byte              // index entries of cur not yet written (written in batches)
	dirty    map[uint32]struct{} // index files changed since INDEX DIRTY RESET
	gone     bool                // deleted: every call fails
	writeSeq uint64              // count of appends

	syncMu    sync.Mutex // serialises fsync; guards syncedSeq
	syncedSeq uint64

	waitMu   sync.Mutex // guards waiters
	waiters  map[*waiter]struct{}
	nWaiters atomic.Int32
}

type waiter struct {
	cmd string
	ch  chan string
}

func segName(kind string, id uint32) string { return fmt.Sprintf("zdb-%s-%05d", kind, id) }

func newNamespace(cfg *Config, log *slog.Logger, name string) *namespace {
	return &namespace{
		name:     name,
		dataDir:  filepath.Join(cfg.DataDir, name),
		indexDir: filepath.Join(cfg.IndexDir, name),
		cfg:      cfg,
		log:      log.With("namespace", name),
		segs:     map[uint32]*segment{},
		dirty:    map[uint32]struct{}{},
		waiters:  map[*waiter]struct{}{},
	}
}

func (ns *namespace) newKeyIndex(hint int) {
	if ns.settings.Mode == ModeSeq {
		ns.keys = &seqIndex{}
	} else {
		ns.keys = newUserIndex(hint)
	}
}

func (ns *namespace) saveSettings() error {
	b, err := json.MarshalIndent(ns.settings, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding settings: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(ns.indexDir, settingsFile), b, 0o600); err != nil {
		return fmt.Errorf("writing settings: %w", err)
	}
	return nil
}

func (ns *namespace) now() uint32 { return uint32(ns.cfg.Now().Unix()) }

// createSegment makes a new empty data and index file pair and makes it the
// current segment. Called with mu held (or before the namespace is shared).
func (ns *namespace) createSegment(id uint32) error {
	created := ns.now()
	seg := &segment{id: id}
	var err error
	open := func(dir, kind string, magic [4]byte) (*os.File, error) {
		f, err := os.OpenFile(filepath.Join(dir, segName(kind, id)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating %s file: %w", kind, err)
		}
		h := appendFileHeader(nil, fileHeader{magic: magic, mode: ns.settings.Mode, id: id, created: created})
		if _, err := f.WriteAt(h, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("writing %s header: %w", kind, err)
		}
		return f, nil
	}
	if seg.data, err = open(ns.dataDir, "data", dataMagic); err != nil {
		return err
	}
	if seg.index, err = open(ns.indexDir, "index", indexMagic); err != nil {
		seg.data.Close()
		return err
	}
	seg.dataSize, seg.indexSize = fileHeaderSize, fileHeaderSize
	ns.segs[id] = seg
	ns.ids = append(ns.ids, id)
	ns.cur = seg
	ns.dirty[id] = struct{}{}
	if err := atomicfile.SyncDir(ns.dataDir); err != nil {
		return err
	}
	return atomicfile.SyncDir(ns.indexDir)
}

// rotate closes the current segment for appends and starts the next one.
func (ns *namespace) rotate() error {
	if err := ns.flushIndex(); err != nil {
		return err
	}
	if err := fdatasync(ns.cur.data); err != nil {
		return fmt.Errorf("syncing data file: %w", err)
	}
	if err := fdatasync(ns.cur.index); err != nil {
		return fmt.Errorf("syncing index file: %w", err)
	}
	return ns.createSegment(ns.cur.id + 1)
}

func fdatasync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = syscall.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// usable reports whether the namespace can be used at all.
func (ns *namespace) usable() error {
	if ns.gone {
		return ErrNamespaceGone
	}
	if ns.settings.Frozen {
		return ErrFrozen
	}
	return nil
}

// writable reports whether the namespace takes writes; called with mu held.
func (ns *namespace) writable() error {
	if err := ns.usable(); err != nil {
		return err
	}
	if ns.settings.Paused {
		return ErrPaused
	}
	if ns.settings.Locked {
		return ErrLocked
	}
	return nil
}

// append writes one entry to the current segment and returns its location.
// Called with mu held for writing.
func (ns *namespace) append(key []byte, m meta, payload []byte) (loc, error) {
	need := int64(dataEntryFixed + len(key) + len(payload))
	if ns.cur.dataSize+need > ns.cfg.MaxDataFileSize && ns.cur.dataSize > fileHeaderSize {
		if err := ns.rotate(); err != nil {
			return loc{}, err
		}
	}
	if ns.cur.dataSize+need > int64(^uint32(0)) {
		return loc{}, errors.New("data file offset overflow")
	}
	seg := ns.cur
	ns.wbuf = appendDataEntry(ns.wbuf[:0], m, key, payload)
	if _, err := seg.data.WriteAt(ns.wbuf, seg.dataSize); err != nil {
		_ = seg.data.Truncate(seg.dataSize)
		return loc{}, fmt.Errorf("writing data entry: %w", err)
	}
	if cap(ns.wbuf) > 1<<20 {
		ns.wbuf = nil
	}
	// The index entry is written with the next batch: the data file alone
	// is enough to recover it after a crash.
	l := loc{file: seg.id, off: uint32(seg.dataSize), size: m.size, crc: m.crc}
	ns.ipend = appendIndexEntry(ns.ipend, m, l.off, key)
	seg.dataSize += need
	seg.indexSize += int64(indexEntryFixed + len(key))
	ns.dirty[seg.id] = struct{}{}
	ns.writeSeq++
	if len(ns.ipend) >= 64<<10 {
		if err := ns.flushIndex(); err != nil {
			ns.log.Warn("index_write_failed", "err", err) // retried with the next batch
		}
	}
	return l, nil
}

// flushIndex writes the pending index entries; called with mu held for
// writing. On error they stay pending.
func (ns *namespace) flushIndex() error {
	if len(ns.ipend) == 0 || ns.cur == nil {
		return nil
	}
	off := ns.cur.indexSize - int64(len(ns.ipend))
	if _, err := ns.cur.index.WriteAt(ns.ipend, off); err != nil {
		return fmt.Errorf("writing index file %d: %w", ns.cur.id, err)
	}
	ns.ipend = ns.ipend[:0]
	if cap(ns.ipend) > 1<<20 {
		ns.ipend = nil
	}
	return nil
}

// set stores value under key. It returns the key (the new id in seq mode),
// or nil when the value is unchanged, and the write sequence number to wait
// for with syncTo.
func (ns *namespace) set(key, value []byte, ts uint32) ([]byte, uint64, error) {
	if len(key) > MaxKeyLen {
		return nil, 0, ErrKeyTooLarge
	}
	if len(value) > MaxValueLen {
		return nil, 0, ErrValueTooLarge
	}
	crc := checksum(value)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.writable(); err != nil {
		return nil, 0, err
	}
	var existing loc
	var found bool
	if ns.settings.Mode == ModeSeq {
		if len(key) == 0 {
			key = seqKey(ns.keys.(*seqIndex).next())
		} else if existing, found = ns.keys.get(key); !found {
			return nil, 0, ErrOnlyUpdate
		}
	} else {
		if len(key) == 0 {
			return nil, 0, ErrKeyNeeded
		}
		existing, found = ns.keys.get(key)
	}
	if found && ns.settings.Worm {
		return nil, 0, ErrWorm
	}
	if found && existing.crc == crc && existing.size == uint32(len(value)) {
		return nil, 0, nil
	}
	if ns.settings.MaxSize > 0 {
		used := ns.dataSize
		if found {
			used -= uint64(existing.size)
		}
		if used+uint64(len(value)) > ns.settings.MaxSize {
			return nil, 0, ErrNamespaceFull
		}
	}
	if ts == 0 {
		ts = ns.now()
	}
	m := meta{size: uint32(len(value)), crc: crc, ts: ts}
	if found {
		m.prevFile, m.prevOff = existing.file, existing.off
	}
	l, err := ns.append(key, m, value)
	if err != nil {
		return nil, 0, err
	}
	ns.keys.put(key, l)
	if found {
		ns.dataSize -= uint64(existing.size)
	}
	ns.dataSize += uint64(len(value))
	return key, ns.writeSeq, nil
}

// del appends a tombstone for key.
func (ns *namespace) del(key []byte) (uint64, error) {
	if len(key) > MaxKeyLen {
		return 0, ErrKeyTooLarge
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.writable(); err != nil {
		return 0, err
	}
	existing, found := ns.keys.get(key)
	if !found {
		return 0, ErrKeyNotFound
	}
	if ns.settings.Worm {
		return 0, ErrWorm
	}
	m := meta{flags: flagDeleted, ts: ns.now(), prevFile: existing.file, prevOff: existing.off, crc: checksum(nil)}
	if _, err := ns.append(key, m, nil); err != nil {
		return 0, err
	}
	ns.keys.del(key)
	ns.dataSize -= uint64(existing.size)
	return ns.writeSeq, nil
}

// lookup returns the location of key.
func (ns *namespace) lookup(key []byte) (loc, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.usable(); err != nil {
		return loc{}, err
	}
	l, ok := ns.keys.get(key)
	if !ok {
		return loc{}, ErrKeyNotFound
	}
	return l, nil
}

// get appends the value of key to dst. It returns ErrKeyNotFound if absent.
func (ns *namespace) get(key, dst []byte) ([]byte, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.usable(); err != nil {
		return dst, err
	}
	l, ok := ns.keys.get(key)
	if !ok {
		return dst, ErrKeyNotFound
	}
	return ns.readPayload(l, len(key), dst)
}

// readPayload reads a payload; called with mu held.
func (ns *namespace) readPayload(l loc, klen int, dst []byte) ([]byte, error) {
	seg := ns.segs[l.file]
	if seg == nil {
		return dst, fmt.Errorf("data file %d missing", l.file)
	}
	n := len(dst)
	dst = slices.Grow(dst, int(l.size))[:n+int(l.size)]
	off := int64(l.off) + dataEntryFixed + int64(klen)
	if !ns.readMapped(seg, dst[n:], off) {
		if _, err := seg.data.ReadAt(dst[n:], off); err != nil {
			return dst[:n], fmt.Errorf("reading data file %d: %w", l.file, err)
		}
	}
	if checksum(dst[n:]) != l.crc {
		ns.log.Error("payload_checksum_mismatch", "file", l.file, "offset", l.off)
		return dst[:n], ErrCorrupted
	}
	return dst, nil
}

// check verifies the payload checksum of key.
func (ns *namespace) check(key []byte) (bool, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.usable(); err != nil {
		return false, err
	}
	l, ok := ns.keys.get(key)
	if !ok {
		return false, ErrKeyNotFound
	}
	seg := ns.segs[l.file]
	if seg == nil {
		return false, nil
	}
	p := make([]byte, dataEntryFixed+len(key)+int(l.size))
	if _, err := seg.data.ReadAt(p, int64(l.off)); err != nil {
		return false, nil
	}
	m, klen, err := parseDataHeader(p)
	if err != nil || !bytes.Equal(p[dataEntryFixed:dataEntryFixed+klen], key) {
		return false, nil
	}
	return checksum(p[dataEntryFixed+klen:]) == m.crc && m.crc == l.crc, nil
}

// syncTo makes every append up to seq durable. Concurrent callers share one
// fsync (group commit).
func (ns *namespace) syncTo(seq uint64) error {
	ns.syncMu.Lock()
	defer ns.syncMu.Unlock()
	if ns.syncedSeq >= seq {
		return nil
	}
	ns.mu.RLock()
	if ns.gone {
		ns.mu.RUnlock()
		return ErrNamespaceGone
	}
	target, data, index := ns.writeSeq, ns.cur.data, ns.cur.index
	ns.mu.RUnlock()
	if seq == ^uint64(0) {
		ns.mu.Lock()
		err := ns.flushIndex()
		ns.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := fdatasync(data); err != nil {
		return fmt.Errorf("syncing data file: %w", err)
	}
	if seq == ^uint64(0) { // background sync: the index too
		if err := fdatasync(index); err != nil {
			return fmt.Errorf("syncing index file: %w", err)
		}
	}
	ns.syncedSeq = target
	return nil
}

// info returns the namespace's public description.
func (ns *namespace) info() NamespaceInfo {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	var idx int64
	for _, s := range ns.segs {
		idx += s.indexSize
	}
	entries := 0
	if ns.keys != nil {
		entries = ns.keys.len()
	}
	return NamespaceInfo{
		Name: ns.name, MaxSize: ns.settings.MaxSize, DataSize: ns.dataSize, IndexSize: uint64(idx),
		Entries: uint64(entries), Mode: ns.settings.Mode, Public: ns.settings.Public,
		HasPassword: ns.settings.Password != "", Worm: ns.settings.Worm,
		Locked: ns.settings.Locked, Frozen: ns.settings.Frozen, Paused: ns.settings.Paused,
	}
}

// closeFiles closes every file; called with mu held.
func (ns *namespace) closeFiles() error {
	first := ns.flushIndex()
	for _, s := range ns.segs {
		s.unmap()
		for _, f := range []*os.File{s.data, s.index} {
			if err := f.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	ns.segs = map[uint32]*segment{}
	ns.ids = nil
	ns.cur = nil
	ns.ipend = nil
	return first
}

// flush removes every entry.
func (ns *namespace) flush() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.usable(); err != nil {
		return err
	}
	if ns.settings.Paused {
		return ErrPaused
	}
	if err := ns.closeFiles(); err != nil {
		ns.log.Warn("closing_files", "err", err)
	}
	for _, dir := range []string{ns.dataDir, ns.indexDir} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, e := range ents {
			if e.Name() != settingsFile {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("removing %s: %w", e.Name(), err)
				}
			}
		}
	}
	ns.newKeyIndex(0)
	ns.dataSize = 0
	ns.dirty = map[uint32]struct{}{}
	return ns.createSegment(1)
}

// reload drops what the namespace holds in memory and reads its data and
// index files again, as after a restart (0-db's RELOAD): what it serves
// afterwards is what is on disk.
func (ns *namespace) reload() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.usable(); err != nil {
		return err
	}
	if err := ns.closeFiles(); err != nil {
		return fmt.Errorf("closing files before reload: %w", err)
	}
	ids, err := listSegments(ns.dataDir, "data")
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		ns.newKeyIndex(0)
		ns.dataSize = 0
		return ns.createSegment(1)
	}
	return ns.recover(ids)
}

// jump starts a new data and index file.
func (ns *namespace) jump() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.usable(); err != nil {
		return err
	}
	return ns.rotate()
}

// dirtyFiles lists the index files changed since the last reset.
func (ns *namespace) dirtyFiles(reset bool) []uint32 {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ids := slices.Sorted(maps.Keys(ns.dirty))
	if reset {
		ns.dirty = map[uint32]struct{}{}
	}
	return ids
}

// waitFor registers a waiter for cmd ("*" for any) on this namespace.
func (ns *namespace) waitFor(cmd string) *waiter {
	w := &waiter{cmd: cmd, ch: make(chan string, 1)}
	ns.waitMu.Lock()
	ns.waiters[w] = struct{}{}
	ns.waitMu.Unlock()
	ns.nWaiters.Add(1)
	return w
}

func (ns *namespace) unwait(w *waiter) {
	ns.waitMu.Lock()
	if _, ok := ns.waiters[w]; ok {
		delete(ns.waiters, w)
		ns.nWaiters.Add(-1)
	}
	ns.waitMu.Unlock()
}

// notify wakes the waiters for cmd.
func (ns *namespace) notify(cmd string) {
	if ns.nWaiters.Load() == 0 {
		return
	}
	ns.waitMu.Lock()
	defer ns.waitMu.Unlock()
	for w := range ns.waiters {
		if w.cmd == "*" || w.cmd == cmd {
			w.ch <- cmd
			delete(ns.waiters, w)
			ns.nWaiters.Add(-1)
		}
	}
}
