package qsfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/testutil"
	"github.com/zos-go/zos/internal/zdbclient"
)

// TestRoundTrip: objects of every shape (empty, one byte, exactly one
// chunk, several chunks with a tail) read back identical with each
// compression algorithm, over six real 0-db backends.
func TestRoundTrip(t *testing.T) {
	testutil.NoLeaks(t)
	c := newCluster(t, 3, 2, 3)
	text := bytes.Repeat([]byte("quantum safe storage "), 20000) // compressible, several chunks
	objects := map[string][]byte{
		"empty":       {},
		"one":         {42},
		"small":       []byte("hello qsfs"),
		"chunk":       random(t, 64<<10),
		"multi":       random(t, 5*(64<<10)+7),
		"text":        text,
		"dir/a/b.txt": []byte("nested name"),
	}
	for _, alg := range []string{CompressionSnappy, CompressionZstd, CompressionNone} {
		t.Run(alg, func(t *testing.T) {
			cfg := c.cfg
			cfg.Compression = alg
			cfg.MetaPrefix = "rt-" + alg
			s, err := New(cfg, testutil.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for name, data := range objects {
				mustPut(t, s, name, data)
			}
			for name, data := range objects {
				mustRead(t, s, name, data)
				if got, want := len(s.metaOf(t, name).Chunks), max(1, (len(data)+cfg.ChunkSize-1)/cfg.ChunkSize); got != want {
					t.Errorf("%s: got %d chunks, want %d", name, got, want)
				}
			}
			got, err := s.List(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(func(yield func(string) bool) {
				for k := range objects {
					if !yield(k) {
						return
					}
				}
			})
			if !slices.Equal(got, want) {
				t.Errorf("List: got %q, want %q", got, want)
			}
			if got, _ := s.List(context.Background(), "dir/"); !slices.Equal(got, []string{"dir/a/b.txt"}) {
				t.Errorf("List dir/: got %q, want [dir/a/b.txt]", got)
			}
			// Overwrite, then delete.
			mustPut(t, s, "small", []byte("replaced"))
			mustRead(t, s, "small", []byte("replaced"))
			if err := s.Delete(context.Background(), "small"); err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(context.Background(), "small")
			wantErr(t, err, ErrNotFound)
			wantErr(t, s.Delete(context.Background(), "small"), ErrNotFound)
			_, err = s.Get(context.Background(), "never")
			wantErr(t, err, ErrNotFound)
		})
	}
}

// TestShardsSpreadOverGroups: every chunk's six shards sit on six
// different backends, two per group.
func TestShardsSpreadOverGroups(t *testing.T) {
	c := newCluster(t, 3, 2, 1)
	s := c.open(t)
	mustPut(t, s, "obj", random(t, 3*(64<<10)))
	for i, ch := range s.metaOf(t, "obj").Chunks {
		backends := map[string]int{}
		groups := map[int]int{}
		for _, sh := range ch.Shards {
			backends[sh.Backend]++
			groups[s.backendByID(sh.Backend).group]++
		}
		if len(backends) != 6 {
			t.Errorf("chunk %d: shards on %d backends, want 6: %v", i, len(backends), backends)
		}
		for g, n := range groups {
			if n != 2 {
				t.Errorf("chunk %d: group %d holds %d shards, want 2", i, g, n)
			}
		}
	}
}

// TestSurvivesAllowedLoss: with one whole group down, or two backends of
// different groups down, every byte reads back identical; with a third
// backend down reads fail with ErrUnreadable, and writes fail (never
// acknowledged) while the older version stays readable.
func TestSurvivesAllowedLoss(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	objs := map[string][]byte{"a": random(t, 200<<10), "b": []byte("small"), "c": {}}
	for n, d := range objs {
		mustPut(t, s, n, d)
	}
	readAll := func() {
		t.Helper()
		for n, d := range objs {
			mustRead(t, s, n, d)
		}
	}
	// A whole group lost.
	c.groups[1][0].Stop()
	c.groups[1][1].Stop()
	readAll()
	c.groups[1][0].Restart()
	c.groups[1][1].Restart()
	// Two backends of different groups lost.
	c.groups[0][0].Stop()
	c.groups[2][1].Stop()
	readAll()

	// Two down: four live backends cannot hold six shards so that losing
	// two more loses at most two: the write is refused.
	err := s.Put(context.Background(), "b", []byte("new version"))
	wantErr(t, err, ErrNotDurable)
	mustRead(t, s, "b", objs["b"])

	// One more: too few shards to read, too few backends to write.
	c.groups[1][0].Stop()
	_, err = s.Get(context.Background(), "a")
	wantErr(t, err, ErrUnreadable)
	err = s.Put(context.Background(), "d", []byte("lost?"))
	wantErr(t, err, ErrTooFewBackends)
	if names, _ := s.List(context.Background(), "d"); len(names) != 0 {
		t.Errorf("List after a refused Put: got %q, want none", names)
	}

	// Back up: everything reads, and the next write goes through at once
	// (backends that failed a moment ago are tried when the others are
	// not enough).
	c.groups[0][0].Restart()
	c.groups[2][1].Restart()
	c.groups[1][0].Restart()
	mustPut(t, s, "d", []byte("stored"))
	readAll()
	mustRead(t, s, "d", []byte("stored"))
}

// TestCorruptShardDetectedAndRepaired: garbage written over a shard, a
// deleted shard and a wiped backend are detected (reads still succeed),
// and Repair rewrites them so that the object then survives the loss of
// two other backends.
func TestCorruptShardDetectedAndRepaired(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	data := random(t, 3*(64<<10)+100)
	mustPut(t, s, "obj", data)
	other := []byte("another object")
	mustPut(t, s, "other", other)
	m := s.metaOf(t, "obj")
	ctx := context.Background()

	// Flip: garbage over shard 0 of chunk 0; delete shard 1 of chunk 1.
	sh0 := m.Chunks[0].Shards[0]
	if err := c.node(sh0.Backend).client().Set(ctx, []byte(sh0.Key), []byte("garbage, not a shard")); err != nil {
		t.Fatal(err)
	}
	sh1 := m.Chunks[1].Shards[1]
	if err := c.node(sh1.Backend).client().Del(ctx, []byte(sh1.Key)); err != nil {
		t.Fatal(err)
	}
	mustRead(t, s, "obj", data)
	if st := s.Status(); st.ShardsCorrupt == 0 {
		t.Errorf("Status.ShardsCorrupt: got 0 after reading a corrupt shard, want > 0")
	}
	rep, err := s.Repair(ctx)
	if err != nil {
		t.Fatalf("Repair: %v (%+v)", err, rep)
	}
	if rep.ShardsCorrupt != 1 || rep.ShardsMissing != 1 || rep.ShardsRewritten != 2 || rep.Unrecoverable != 0 {
		t.Errorf("Repair: got %+v, want 1 corrupt, 1 missing, 2 rewritten", rep)
	}
	rep, err = s.Repair(ctx)
	if err != nil || rep.ShardsRewritten != 0 || rep.ShardsCorrupt+rep.ShardsMissing != 0 {
		t.Errorf("second Repair: got %+v, %v, want nothing to do", rep, err)
	}

	// A backend replaced by an empty one: all its shards are missing.
	victim := c.groups[2][0]
	victim.Wipe()
	rep, err = s.Repair(ctx)
	if err != nil {
		t.Fatalf("Repair after wipe: %v", err)
	}
	if rep.ShardsMissing == 0 || rep.ShardsRewritten != rep.ShardsMissing {
		t.Errorf("Repair after wipe: got %+v, want every missing shard rewritten", rep)
	}
	// The repaired shards are real: lose two other backends, read all.
	c.groups[0][0].Stop()
	c.groups[1][1].Stop()
	mustRead(t, s, "obj", data)
	mustRead(t, s, "other", other)
	if st := s.Status(); st.ShardsRepaired == 0 || st.Repairs != 3 {
		t.Errorf("Status: got %d repaired in %d repairs, want > 0 in 3", st.ShardsRepaired, st.Repairs)
	}

	// And a new store sees the repaired locations.
	c.groups[0][0].Restart()
	c.groups[1][1].Restart()
	s.Close()
	s2 := c.open(t)
	c.groups[0][1].Stop()
	c.groups[1][0].Stop()
	mustRead(t, s2, "obj", data)
}

// TestNewStoreFindsEverything: a second Store given only the Config lists
// and reads every object, and does not resurrect a deleted one.
func TestNewStoreFindsEverything(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	objs := map[string][]byte{}
	for i := range 20 {
		name := fmt.Sprintf("file-%02d", i)
		objs[name] = random(t, i*9000)
		mustPut(t, s, name, objs[name])
	}
	mustPut(t, s, "gone", []byte("deleted soon"))
	if err := s.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "file-03", []byte("second version"))
	objs["file-03"] = []byte("second version")
	s.Close()
	// One meta backend down: a majority is enough.
	c.meta[2].Stop()

	s2 := c.open(t)
	names, err := s2.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(objs) {
		t.Fatalf("List: got %d names %q, want %d", len(names), names, len(objs))
	}
	for n, d := range objs {
		mustRead(t, s2, n, d)
	}
	_, err = s2.Get(context.Background(), "gone")
	wantErr(t, err, ErrNotFound)
	if got := s2.Status(); got.Objects != len(objs) {
		t.Errorf("Status.Objects: got %d, want %d", got.Objects, len(objs))
	}
}

// TestWrongKeyRefused: a Store with a wrong meta key or a wrong data key
// refuses to start with ErrWrongKey and overwrites nothing: the right
// keys still read everything.
func TestWrongKeyRefused(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	mustPut(t, s, "secret", []byte("plans"))
	s.Close()
	for _, tt := range []struct {
		name string
		mod  func(*Config)
	}{
		{"meta key", func(cfg *Config) { cfg.MetaKey = key(t) }},
		{"data key", func(cfg *Config) { cfg.DataKey = key(t) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.cfg
			tt.mod(&cfg)
			_, err := New(cfg, testutil.Logger(t))
			wantErr(t, err, ErrWrongKey)
		})
	}
	s2 := c.open(t)
	mustRead(t, s2, "secret", []byte("plans"))
}

// TestMetaUnavailable: without a majority of meta backends New fails
// clearly, and a Put that cannot reach a majority is not acknowledged.
func TestMetaUnavailable(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	c.meta[0].Stop()
	c.meta[1].Stop()
	err := s.Put(context.Background(), "x", []byte("data"))
	wantErr(t, err, ErrNotDurable)
	if _, err := s.Get(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after a refused Put: got %v, want ErrNotFound", err)
	}
	_, err = New(c.cfg, testutil.Logger(t))
	wantErr(t, err, ErrMetaUnavailable)
}

// TestMetaReplicaRepaired: a meta backend that lost its records (replaced)
// gets them back from Repair, and then serves a new Store alone with the
// other meta backends down... minus the majority rule: with 3 meta
// backends, the repaired one and one other suffice.
func TestMetaReplicaRepaired(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	mustPut(t, s, "a", []byte("alpha"))
	mustPut(t, s, "b", random(t, 100<<10))
	want, _ := s.Get(context.Background(), "b")
	c.meta[0].Wipe()
	rep, err := s.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.MetaRewritten != 3 { // two objects and the key check
		t.Errorf("Repair: got %d metadata copies rewritten, want 3", rep.MetaRewritten)
	}
	s.Close()
	c.meta[1].Stop()
	s2 := c.open(t)
	mustRead(t, s2, "a", []byte("alpha"))
	mustRead(t, s2, "b", want)
}

// TestConcurrentPutGet: writers and readers on shared and own names; run
// with -race.
func TestConcurrentPutGet(t *testing.T) {
	testutil.NoLeaks(t)
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 6 {
		wg.Go(func() {
			for i := range 5 {
				own := fmt.Sprintf("w%d-%d", w, i)
				data := bytes.Repeat([]byte{byte(w), byte(i)}, 40000+w*1000)
				if err := s.Put(ctx, own, data); err != nil {
					errs <- err
					return
				}
				if err := s.Put(ctx, "shared", data); err != nil {
					errs <- err
					return
				}
				got, err := s.Get(ctx, own)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: got %d bytes, %v", own, len(got), err)
					return
				}
				if _, err := s.Get(ctx, "shared"); err != nil {
					errs <- fmt.Errorf("shared: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	names, _ := s.List(ctx, "w")
	if len(names) != 30 {
		t.Errorf("List: got %d names, want 30", len(names))
	}
}

// TestBadNames: empty and too long names are refused before anything is
// written.
func TestBadNames(t *testing.T) {
	c := newCluster(t, 3, 2, 1)
	s := c.open(t)
	for _, name := range []string{"", string(bytes.Repeat([]byte("n"), 300))} {
		if err := s.Put(context.Background(), name, []byte("x")); err == nil {
			t.Errorf("Put %d-byte name: got nil, want an error", len(name))
		}
	}
}

// TestWrongBackendPassword: a data backend whose password is wrong is
// reported unhealthy with the namespace refusal, and a write that cannot
// be spread without it fails naming it; nothing is acknowledged.
func TestWrongBackendPassword(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	c.cfg.Groups[1][1].Password = "wrong"
	s := c.open(t)
	err := s.Put(context.Background(), "x", []byte("data"))
	wantErr(t, err, ErrNotDurable)
	bad := c.cfg.Groups[1][1].ID()
	if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "selecting namespace") {
		t.Errorf("got %v, want the error to name %s and the namespace refusal", err, bad)
	}
	for _, b := range s.Status().Backends {
		if b.ID == bad && (b.Healthy || !strings.Contains(b.LastError, "selecting namespace")) {
			t.Errorf("Status of %s: got healthy=%v %q, want unhealthy with the refusal", bad, b.Healthy, b.LastError)
		}
	}
	if names, _ := s.List(context.Background(), ""); len(names) != 0 {
		t.Errorf("List: got %q, want nothing", names)
	}
}

// TestBackendReplacedInConfig: a Config that swaps a backend for a new
// one (a deployment update) reads everything at once, and Repair moves the
// shards the old backend held onto the configured ones; the old backend
// can then go, with two more lost on top.
func TestBackendReplacedInConfig(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	data := random(t, 4*(64<<10))
	mustPut(t, s, "obj", data)
	s.Close()

	old := c.groups[2][0]
	fresh := startNode(t)
	cfg := c.cfg
	cfg.Groups = [][]Backend{cfg.Groups[0], cfg.Groups[1], {fresh.backend(), cfg.Groups[2][1]}}
	s2, err := New(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mustRead(t, s2, "obj", data)
	rep, err := s2.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.ShardsMissing != 4 || rep.ShardsRewritten != 4 || rep.Degraded != 0 {
		t.Errorf("Repair: got %+v, want the 4 shards of the old backend rewritten, none degraded", rep)
	}
	for i, ch := range s2.metaOf(t, "obj").Chunks {
		for _, sh := range ch.Shards {
			if sh.Backend == old.backend().ID() {
				t.Errorf("chunk %d: a shard still on the replaced backend", i)
			}
		}
	}
	old.Stop()
	c.groups[0][0].Stop()
	c.groups[1][1].Stop()
	mustRead(t, s2, "obj", data)
}

// TestHungBackend: a backend that accepts connections and never answers
// costs one timeout: reads still return every byte, and the next read
// asks the other backends first.
func TestHungBackend(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	c.cfg.Timeout = 500 * time.Millisecond
	s := c.open(t)
	data := random(t, 12*(64<<10)) // 12 chunks: the hung backend holds a data shard of some
	mustPut(t, s, "obj", data)

	hung := c.groups[0][0]
	hung.Stop()
	ln, err := net.Listen("tcp", hung.addr)
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	testutil.Go(t, "silent server", func(ctx context.Context) error {
		go func() { <-ctx.Done(); ln.Close() }()
		for {
			conn, err := ln.Accept()
			if err != nil {
				mu.Lock()
				for _, h := range held {
					h.Close()
				}
				mu.Unlock()
				return nil
			}
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		}
	})
	errorsOf := func() uint64 {
		for _, b := range s.Status().Backends {
			if b.ID == hung.backend().ID() {
				return b.Errors
			}
		}
		return 0
	}
	mustRead(t, s, "obj", data)
	if errorsOf() == 0 {
		t.Fatalf("the hung backend was never asked: every chunk has a shard on it")
	}
	before := errorsOf()
	mustRead(t, s, "obj", data)
	if got := errorsOf(); got != before {
		t.Errorf("second read: the hung backend failed %d more calls, want it asked last (not at all)", got-before)
	}
}

// TestEgressPolicyDialer: with the node's egress policy as the dialer, a
// config naming loopback backends (the node itself) reaches none of them:
// New fails with the policy's refusal and nothing is written.
func TestEgressPolicyDialer(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	cfg := c.cfg
	var p egress.Policy // the zero policy refuses loopback
	cfg.Dialer = p.Dialer(&net.Dialer{Timeout: time.Second})
	cfg.Quiet = true
	_, err := New(cfg, testutil.Logger(t))
	wantErr(t, err, ErrMetaUnavailable)
	wantErr(t, err, egress.ErrDenied)
	for _, n := range c.meta {
		if _, err := n.client().Get(context.Background(), []byte(cfg.MetaPrefix+"/keycheck")); !errors.Is(err, zdbclient.ErrNotFound) {
			t.Errorf("key check on %s: got %v, want nothing written", n.addr, err)
		}
	}
}

// TestStatus: the counters metrics read follow puts, gets, deletes and a
// stopped backend.
func TestStatus(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	mustPut(t, s, "a", random(t, 1000))
	mustPut(t, s, "b", random(t, 70000))
	mustRead(t, s, "b", s.mustGet(t, "b"))
	if err := s.Delete(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	c.groups[0][0].Stop()
	// A write asks every backend: the stopped one is noted down, and five
	// cannot hold six shards so as to lose two.
	wantErr(t, s.Put(context.Background(), "c", []byte("c")), ErrNotDurable)
	st := s.Status()
	got := fmt.Sprintf("objects=%d bytes=%d puts=%d gets=%d deletes=%d backends=%d", st.Objects, st.Bytes, st.Puts, st.Gets, st.Deletes, len(st.Backends))
	if want := "objects=1 bytes=70000 puts=2 gets=2 deletes=1 backends=9"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var written uint64
	for _, b := range st.Backends {
		written += b.Written
		if b.ID == c.groups[0][0].backend().ID() && b.Healthy {
			t.Errorf("%s: got healthy after a write with it stopped, want unhealthy", b.ID)
		}
	}
	if written == 0 {
		t.Error("got no values written in the backends' counters")
	}
}

func (s *Store) mustGet(t testing.TB, name string) []byte {
	t.Helper()
	b, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
