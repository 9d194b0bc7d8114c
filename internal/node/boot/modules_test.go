package boot

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// recorder is a module loader that records start and end order and the
// number of loads running at once; block, when set, holds a load until
// it is closed.
type recorder struct {
	mu       sync.Mutex
	started  []string
	finished map[string]int // name -> event number of its end
	begun    map[string]int // name -> event number of its start
	events   int
	running  int
	peak     int
	fail     map[string]bool
	// block holds loads until two run at once (nil: no wait).
	block chan struct{}
	once  sync.Once
}

func (r *recorder) load(p string) error {
	name := filepath.Base(p)
	r.mu.Lock()
	r.started = append(r.started, name)
	if r.begun == nil {
		r.begun = map[string]int{}
	}
	r.events++
	r.begun[name] = r.events
	r.running++
	r.peak = max(r.peak, r.running)
	c := r.block
	if c != nil && r.running == 2 {
		r.once.Do(func() { close(c) })
	}
	r.mu.Unlock()
	if c != nil {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running--
	r.events++
	r.finished[name] = r.events
	if r.fail[name] {
		return errors.New("no such device")
	}
	return nil
}

func entry(name string, deps ...string) modEntry { return modEntry{Path: name, Name: name, Deps: deps} }

// TestLoadBatchDependencies: every module loads after its dependencies
// finished, at most workers at a time, a failure is reported and does not
// stop its dependents from being tried.
func TestLoadBatchDependencies(t *testing.T) {
	mods := []modEntry{entry("a"), entry("b"), entry("c", "a"), entry("d", "c", "b"), entry("e"), entry("f", "d", "e")}
	for _, workers := range []int{1, 2, 4} {
		r := &recorder{finished: map[string]int{}, fail: map[string]bool{"b": true}}
		loaded, failed := loadBatch("/m", mods, r.load, workers)
		if loaded != 5 || len(failed) != 1 || failed["b"] == nil {
			t.Errorf("workers %d: got %d loaded, failed %v, want 5 loaded and b failed", workers, loaded, failed)
		}
		if r.peak > workers {
			t.Errorf("workers %d: got %d loads at once, want at most %d", workers, r.peak, workers)
		}
		for _, m := range mods {
			if _, ok := r.begun[m.Name]; !ok {
				t.Errorf("workers %d: %s never loaded", workers, m.Name)
			}
			for _, d := range m.Deps {
				if r.finished[d] >= r.begun[m.Name] {
					t.Errorf("workers %d: %s started before its dependency %s finished", workers, m.Name, d)
				}
			}
		}
	}
}

// TestLoadBatchParallel: two independent modules load at the same time
// with two workers (each load waits until two run; with one at a time it
// gives up after 10 s and the peak says 1).
func TestLoadBatchParallel(t *testing.T) {
	r := &recorder{finished: map[string]int{}, block: make(chan struct{})}
	loaded, failed := loadBatch("/m", []modEntry{entry("a"), entry("b")}, r.load, 2)
	if loaded != 2 || len(failed) != 0 {
		t.Fatalf("got %d loaded, %v failed, want 2 and none", loaded, failed)
	}
	if r.peak != 2 {
		t.Errorf("got %d loads at once, want 2", r.peak)
	}
}

// TestLoadBatchBadList: a list naming a module twice or with a dependency
// cycle loads each module once and does not hang.
func TestLoadBatchBadList(t *testing.T) {
	mods := []modEntry{entry("a", "b"), entry("b", "a"), entry("a"), entry("c", "c")}
	r := &recorder{finished: map[string]int{}}
	done := make(chan struct{})
	var loaded int
	go func() { loaded, _ = loadBatch("/m", mods, r.load, 2); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loading a list with a cycle hangs")
	}
	if loaded != 3 || len(r.started) != 3 {
		t.Errorf("got %d loaded, %d loads (%v), want 3 and 3", loaded, len(r.started), r.started)
	}
}
