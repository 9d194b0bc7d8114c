package qsfs

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/zdbclient"
)

// Errors of a Store.
var (
	// ErrNotFound is an object the store does not hold.
	ErrNotFound = errors.New("object not found")
	// ErrTooFewBackends is a write with fewer reachable backends than
	// minimal_shards: nothing was acknowledged.
	ErrTooFewBackends = errors.New("fewer reachable backends than minimal_shards")
	// ErrNotDurable is a write whose shards or metadata could not be
	// stored so as to survive the configured losses: nothing was
	// acknowledged.
	ErrNotDurable = errors.New("write not durable")
	// ErrUnreadable is a chunk with fewer than minimal_shards valid shards.
	ErrUnreadable = errors.New("too few valid shards to rebuild the data")
	// ErrMetaUnavailable is fewer reachable meta backends than a majority.
	ErrMetaUnavailable = errors.New("meta backends unavailable")
	// ErrClosed is a call on a closed store.
	ErrClosed = errors.New("store closed")
)

// lockStripes serialise writes to the same object name.
const lockStripes = 64

// Store keeps objects erasure-coded over 0-db backends. It assumes it is
// the only writer of its backends (one qsfs per config), and is safe for
// concurrent use.
type Store struct {
	cfg   Config
	log   *slog.Logger
	codec *codec
	metaA cipher.AEAD
	data  []*backend // every group's backends, in order
	meta  []*backend
	cand  []placeBackend // data backends for placement, positions = data indexes

	stripes [lockStripes]sync.Mutex // serialise Put/Delete/Repair of one name

	mu      sync.RWMutex // guards objects, version and closed
	objects map[string]objectMeta
	version uint64
	closed  bool

	repairMu sync.Mutex // one Repair at a time

	puts, gets, deletes                      atomic.Uint64
	shardsMissing, shardsCorrupt, shardsFixd atomic.Uint64
	repairs                                  atomic.Uint64
}

// New connects to the backends, checks the keys against the meta
// backends, and loads the metadata of every object. A wrong key fails with
// ErrWrongKey and writes nothing; fewer reachable meta backends than a
// majority fails with ErrMetaUnavailable.
func New(cfg Config, log *slog.Logger) (*Store, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid qsfs config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cd, err := newCodec(cfg.DataKey)
	if err != nil {
		return nil, err
	}
	ma, err := newAEAD(cfg.MetaKey)
	if err != nil {
		cd.close()
		return nil, err
	}
	s := &Store{cfg: cfg, log: log.With("component", "qsfs"), codec: cd, metaA: ma, objects: map[string]objectMeta{}}
	for gi, g := range cfg.Groups {
		for _, b := range g {
			s.cand = append(s.cand, placeBackend{idx: len(s.data), group: gi})
			s.data = append(s.data, newBackend(b, gi, &cfg))
		}
	}
	for _, b := range cfg.Meta {
		s.meta = append(s.meta, newBackend(b, -1, &cfg))
	}
	// Each call is bounded by cfg.Timeout; the whole load by the number of
	// records.
	if err := s.load(context.Background()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) quorum() int { return len(s.meta)/2 + 1 }

func (s *Store) keyCheckKey() string { return s.cfg.MetaPrefix + "/keycheck" }

func (s *Store) objectKey(name string) string { return s.cfg.MetaPrefix + "/o/" + name }

// load checks the keys and reads every object record from the reachable
// meta backends, keeping the newest valid version of each.
func (s *Store) load(ctx context.Context) error {
	type result struct {
		check   []byte
		records map[string][]byte
		err     error
	}
	res := make([]result, len(s.meta))
	var wg sync.WaitGroup
	for i, b := range s.meta {
		wg.Go(func() {
			r := &res[i]
			r.check, r.err = b.get(ctx, s.keyCheckKey())
			if isNotFound(r.err) {
				r.check, r.err = nil, nil
			}
			if r.err != nil {
				return
			}
			r.records, r.err = s.scanRecords(ctx, b)
		})
	}
	wg.Wait()
	reachable := 0
	var errs []error
	for i, r := range res {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("meta backend %s: %w", s.meta[i].id, r.err))
			continue
		}
		reachable++
	}
	if reachable < s.quorum() {
		return fmt.Errorf("%w: %d of %d reachable, need %d: %w", ErrMetaUnavailable, reachable, len(s.meta), s.quorum(), errors.Join(errs...))
	}
	// The key check: any copy that opens proves the meta key; its inner
	// value proves the data key. Copies that exist but none opens: a wrong
	// meta key.
	found, opened := 0, false
	for _, r := range res {
		if r.err != nil || r.check == nil {
			continue
		}
		found++
		plain, err := openRecord(s.metaA, s.cfg.MetaPrefix, s.keyCheckKey(), r.check)
		if err != nil {
			continue
		}
		var kc keyCheck
		if err := json.Unmarshal(plain, &kc); err != nil {
			continue
		}
		if len(kc.Nonce) != s.codec.aead.NonceSize() {
			continue
		}
		if _, err := s.codec.aead.Open(nil, kc.Nonce, kc.Sealed, []byte("qsfs-keycheck")); err != nil {
			return fmt.Errorf("%w: the data encryption key does not open this store's key check", ErrWrongKey)
		}
		opened = true
		break
	}
	if found > 0 && !opened {
		return fmt.Errorf("%w: the meta encryption key opens none of %d key-check copies", ErrWrongKey, found)
	}
	var bad, total int
	for _, r := range res {
		for name, blob := range r.records {
			total++
			m, err := decodeObject(s.metaA, s.cfg.MetaPrefix, s.objectKey(name), name, blob)
			if err != nil {
				bad++
				s.log.Warn("metadata_record_invalid", "name", name, "err", err)
				continue
			}
			if cur, ok := s.objects[name]; !ok || m.Version > cur.Version {
				s.objects[name] = m
			}
			s.version = max(s.version, m.Version)
		}
	}
	if total > 0 && bad == total {
		return fmt.Errorf("%w: none of %d metadata records opens", ErrWrongKey, total)
	}
	if !opened {
		if err := s.writeKeyCheck(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) writeKeyCheck(ctx context.Context) error {
	blob, err := s.keyCheckRecord()
	if err != nil {
		return err
	}
	return s.writeMeta(ctx, s.keyCheckKey(), blob)
}

// keyCheckRecord seals the key-check value with the data key, then the
// record with the meta key.
func (s *Store) keyCheckRecord() ([]byte, error) {
	nonce := make([]byte, s.codec.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	kc := keyCheck{Nonce: nonce, Sealed: s.codec.aead.Seal(nil, nonce, keyCheckPlain, []byte("qsfs-keycheck"))}
	return sealRecord(s.metaA, s.cfg.MetaPrefix, s.keyCheckKey(), kc)
}

// scanRecords reads every object record of this store from one meta
// backend.
func (s *Store) scanRecords(ctx context.Context, b *backend) (map[string][]byte, error) {
	prefix := s.objectKey("")
	out := map[string][]byte{}
	var cursor []byte
	for {
		keys, next, done, err := b.c.Scan(ctx, cursor)
		b.note(err)
		if err != nil {
			return nil, fmt.Errorf("scanning: %w", err)
		}
		if done {
			return out, nil
		}
		for _, k := range keys {
			if !strings.HasPrefix(string(k), prefix) {
				continue
			}
			name := string(k[len(prefix):])
			if _, ok := out[name]; ok {
				continue
			}
			v, err := b.get(ctx, string(k))
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[name] = v
		}
		cursor = next
	}
}

// writeMeta stores a record on every meta backend; it needs a majority.
func (s *Store) writeMeta(ctx context.Context, key string, blob []byte) error {
	errs := make([]error, len(s.meta))
	var wg sync.WaitGroup
	for i, b := range s.meta {
		wg.Go(func() { errs[i] = b.set(ctx, key, blob) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok < s.quorum() {
		return fmt.Errorf("%w: metadata stored on %d of %d meta backends, need %d: %w", ErrNotDurable, ok, len(s.meta), s.quorum(), errors.Join(errs...))
	}
	return nil
}

func (s *Store) stripe(name string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(name))
	return &s.stripes[h.Sum32()%lockStripes]
}

func (s *Store) checkName(name string) error {
	if name == "" {
		return errors.New("object name is empty")
	}
	if n := len(s.objectKey(name)); n > 255 {
		return fmt.Errorf("object name of %d bytes makes a metadata key of %d, more than 255", len(name), n)
	}
	return nil
}

// nextVersion is newer than every version seen: the clock in nanoseconds,
// or one more than the last.
func (s *Store) nextVersion() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	s.version = max(s.version+1, uint64(time.Now().UnixNano()))
	return s.version, nil
}

func (s *Store) lookup(name string) (objectMeta, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return objectMeta{}, false, ErrClosed
	}
	m, ok := s.objects[name]
	return m, ok && !m.Deleted, nil
}

// commit records m as the object's newest version on the meta backends
// and in memory.
func (s *Store) commit(ctx context.Context, m objectMeta) error {
	key := s.objectKey(m.Name)
	blob, err := sealRecord(s.metaA, s.cfg.MetaPrefix, key, m)
	if err != nil {
		return err
	}
	if err := s.writeMeta(ctx, key, blob); err != nil {
		return err
	}
	s.mu.Lock()
	s.objects[m.Name] = m
	s.mu.Unlock()
	return nil
}

// Put stores data under name, replacing any older version. It returns once
// every chunk's shards are stored so as to survive the configured losses
// and the metadata is on a majority of the meta backends; on error nothing
// is acknowledged and the older version, if any, is still what Get reads.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	if n, most := (len(data)+s.cfg.ChunkSize-1)/s.cfg.ChunkSize, maxChunks(s.cfg.ExpectedShards); n > most {
		return fmt.Errorf("object of %d bytes makes %d chunks, more than the %d one metadata record holds", len(data), n, most)
	}
	mu := s.stripe(name)
	mu.Lock()
	defer mu.Unlock()
	old, hadOld, err := s.lookup(name)
	if err != nil {
		return err
	}
	version, err := s.nextVersion()
	if err != nil {
		return err
	}
	m := objectMeta{Name: name, Version: version, DataVersion: version, Size: int64(len(data)), Compression: s.cfg.Compression,
		Minimal: s.cfg.MinimalShards, Total: s.cfg.ExpectedShards, Chunks: []chunkMeta{}}
	for i := 0; i == 0 || i*s.cfg.ChunkSize < len(data); i++ {
		plain := data[i*s.cfg.ChunkSize : min(len(data), (i+1)*s.cfg.ChunkSize)]
		cm, err := s.putChunk(ctx, &m, i, plain)
		if err != nil {
			s.dropShards(m.Chunks)
			return fmt.Errorf("storing %q chunk %d: %w", name, i, err)
		}
		m.Chunks = append(m.Chunks, cm)
		if len(data) == 0 {
			break
		}
	}
	if err := s.commit(ctx, m); err != nil {
		s.dropShards(m.Chunks)
		return fmt.Errorf("storing %q: %w", name, err)
	}
	s.puts.Add(1)
	if hadOld {
		s.dropShards(old.Chunks)
	}
	return nil
}

// putChunk seals, codes and writes one chunk. Backends that fail are left
// out and the chunk placed again on the others, until it is stored so as
// to survive the configured losses or that is no longer possible.
func (s *Store) putChunk(ctx context.Context, m *objectMeta, index int, plain []byte) (chunkMeta, error) {
	sealed, nonce, err := s.codec.seal(plain, m.Compression, chunkAAD(m.Name, m.DataVersion, index, len(plain)))
	if err != nil {
		return chunkMeta{}, err
	}
	values, err := split(sealed, m.Minimal, m.Total)
	if err != nil {
		return chunkMeta{}, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return chunkMeta{}, err
	}
	cm := chunkMeta{Size: len(plain), SealedLen: len(sealed), Nonce: nonce, Shards: make([]shardMeta, m.Total)}
	for i, v := range values {
		cm.Shards[i] = shardMeta{Key: fmt.Sprintf("%x.%d", id, i), Sum: v[8:40]}
	}
	excluded := map[int]bool{} // data backends that failed during this Put
	var failures []error
	for {
		// Backends up first; those that failed lately too when the others
		// are not enough (they may be back).
		var live, all []placeBackend
		for _, c := range s.cand {
			if excluded[c.idx] {
				continue
			}
			all = append(all, c)
			if s.data[c.idx].up() {
				live = append(live, c)
			}
		}
		if len(all) < m.Minimal {
			return chunkMeta{}, fmt.Errorf("%w: %d of %d backends reachable, minimal_shards is %d: %w",
				ErrTooFewBackends, len(all), len(s.data), m.Minimal, errors.Join(failures...))
		}
		cand := live
		var p []int
		err := errors.New("no backend up")
		if len(live) > 0 {
			p, err = place(live, m.Total, m.Minimal, s.cfg.RedundantGroups, s.cfg.RedundantNodes, mrand.IntN(len(live)))
		}
		if err != nil && len(all) > len(live) {
			cand = all
			p, err = place(all, m.Total, m.Minimal, s.cfg.RedundantGroups, s.cfg.RedundantNodes, mrand.IntN(len(all)))
		}
		if err != nil {
			return chunkMeta{}, fmt.Errorf("%w: %d of %d backends reachable: %w: %w", ErrNotDurable, len(all), len(s.data), err, errors.Join(failures...))
		}
		errs := make([]error, m.Total)
		var wg sync.WaitGroup
		for i := range values {
			b := s.data[cand[p[i]].idx]
			wg.Go(func() { errs[i] = b.set(ctx, cm.Shards[i].Key, values[i]) })
		}
		wg.Wait()
		failed := false
		for i, err := range errs {
			b := s.data[cand[p[i]].idx]
			if err != nil {
				failed = true
				excluded[cand[p[i]].idx] = true
				failures = append(failures, fmt.Errorf("backend %s: %w", b.id, err))
			}
			cm.Shards[i].Backend = b.id
		}
		if !failed {
			return cm, nil
		}
		// Drop what landed, and place again without the failed backends.
		s.dropShards([]chunkMeta{cm})
		if err := ctx.Err(); err != nil {
			return chunkMeta{}, err
		}
	}
}

// dropShards deletes shards best-effort (an old version, or a write that
// was not acknowledged); what stays behind is garbage, never data.
func (s *Store) dropShards(chunks []chunkMeta) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range chunks {
		for _, sh := range c.Shards {
			b := s.backendByID(sh.Backend)
			if b == nil || !b.up() {
				continue
			}
			wg.Go(func() { _ = b.del(ctx, sh.Key) })
		}
	}
	wg.Wait()
}

func (s *Store) backendByID(id string) *backend {
	for _, b := range s.data {
		if b.id == id {
			return b
		}
	}
	return nil
}

// Get reads an object; errors.Is(err, ErrNotFound) when it is absent,
// ErrUnreadable when a chunk has fewer than minimal_shards valid shards.
// A read that races with a Put, Delete or Repair of the same name (whose
// old shards go once the new metadata is in) starts again on the newer
// metadata.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		m, ok, err := s.lookup(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		out, err := s.read(ctx, m)
		if err == nil {
			s.gets.Add(1)
			return out, nil
		}
		cur, ok, _ := s.lookup(name)
		if !ok {
			return nil, fmt.Errorf("%q: %w", name, ErrNotFound) // deleted meanwhile
		}
		if cur.Version != m.Version && ctx.Err() == nil && attempt < 10 {
			continue
		}
		return nil, err
	}
}

func (s *Store) read(ctx context.Context, m objectMeta) ([]byte, error) {
	out := make([]byte, 0, m.Size)
	for i, c := range m.Chunks {
		plain, err := s.readChunk(ctx, &m, i, c)
		if err != nil {
			return nil, fmt.Errorf("reading %q chunk %d: %w", m.Name, i, err)
		}
		out = append(out, plain...)
	}
	return out, nil
}

// readChunk fetches minimal shards first, data shards on backends that
// are up before the others (rebuilding is then a copy), and the remaining
// shards only when some of those are missing or corrupt.
func (s *Store) readChunk(ctx context.Context, m *objectMeta, index int, c chunkMeta) ([]byte, error) {
	payloads := make([][]byte, m.Total)
	errs := make([]error, m.Total)
	fetch := func(idx []int) {
		var wg sync.WaitGroup
		for _, i := range idx {
			wg.Go(func() { payloads[i], errs[i] = s.fetchShard(ctx, m, c, i) })
		}
		wg.Wait()
	}
	var up, down []int
	for i, sh := range c.Shards {
		if b := s.backendByID(sh.Backend); b != nil && b.up() {
			up = append(up, i)
		} else {
			down = append(down, i)
		}
	}
	order := append(up, down...)
	fetch(order[:min(m.Minimal, len(order))])
	valid := 0
	for _, p := range payloads {
		if p != nil {
			valid++
		}
	}
	if valid < m.Minimal {
		fetch(order[m.Minimal:])
		valid = 0
		for _, p := range payloads {
			if p != nil {
				valid++
			}
		}
	}
	if valid < m.Minimal {
		return nil, fmt.Errorf("%w: %d of %d shards valid, need %d: %w", ErrUnreadable, valid, m.Total, m.Minimal, errors.Join(errs...))
	}
	sealed, err := join(payloads, m.Minimal, m.Total, c.SealedLen)
	if err != nil {
		return nil, err
	}
	return s.codec.open(sealed, c.Nonce, m.Compression, chunkAAD(m.Name, m.DataVersion, index, c.Size), c.Size)
}

// fetchShard reads and verifies one shard; nil payload and an error when
// it is missing or corrupt.
func (s *Store) fetchShard(ctx context.Context, m *objectMeta, c chunkMeta, i int) ([]byte, error) {
	sh := c.Shards[i]
	b := s.backendByID(sh.Backend)
	if b == nil {
		s.shardsMissing.Add(1)
		return nil, fmt.Errorf("shard %d: backend %s is no longer configured", i, sh.Backend)
	}
	v, err := b.get(ctx, sh.Key)
	if err != nil {
		s.shardsMissing.Add(1)
		return nil, fmt.Errorf("shard %d on %s: %w", i, b.id, err)
	}
	p, err := checkShard(v, i, m.Total, m.Minimal, sh.Sum)
	if err != nil {
		s.shardsCorrupt.Add(1)
		s.log.Warn("shard_corrupt", "object", m.Name, "backend", b.id, "key", sh.Key)
		return nil, fmt.Errorf("shard %d on %s: %w", i, b.id, err)
	}
	return p, nil
}

// Delete removes an object: a tombstone on the meta backends, then its
// shards (best effort). errors.Is(err, ErrNotFound) when it is absent.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	mu := s.stripe(name)
	mu.Lock()
	defer mu.Unlock()
	old, ok, err := s.lookup(name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	version, err := s.nextVersion()
	if err != nil {
		return err
	}
	if err := s.commit(ctx, objectMeta{Name: name, Version: version, Deleted: true}); err != nil {
		return fmt.Errorf("deleting %q: %w", name, err)
	}
	s.deletes.Add(1)
	s.dropShards(old.Chunks)
	return nil
}

// List returns the names of the objects starting with prefix, sorted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	var out []string
	for name, m := range s.objects {
		if !m.Deleted && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Close drops the connections; later calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for _, b := range append(slices.Clone(s.data), s.meta...) {
		b.c.Close()
	}
	s.codec.close()
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, zdbclient.ErrNotFound) }
