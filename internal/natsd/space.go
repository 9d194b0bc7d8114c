package natsd

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The store's space: the server watches the free space of the file system
// under StoreDir. Below the reserve, CheckStore refuses (the registry then
// refuses new writes at once, saying so) so that JetStream never meets a
// full disk unannounced. If it meets one anyway (another program filled the
// file system), each stream's file store keeps its write error for good and
// JetStream stops acknowledging writes until it restarts: once there is
// room again the watcher restarts JetStream in-process, which reopens every
// stream from its files.

// Defaults of the reserve and the watch.
const (
	defaultReserveMax     = 64 << 20 // bytes
	defaultReservePercent = 5        // of the file system's size
	defaultSpaceInterval  = time.Second
	// restartFree is the least free space to restart JetStream in after
	// a failed write, whatever the reserve.
	restartFree = 1 << 20
)

// NoReserve, as Config.StoreReserve, keeps no reserve: writes are refused
// only while JetStream recovers from a failed write.
const NoReserve = -1

// DefaultReserve is the reserve kept on a file system of size bytes: the
// smaller of 64 MiB and 5% of it.
func DefaultReserve(size int64) int64 {
	return min(int64(defaultReserveMax), size*defaultReservePercent/100)
}

// Space is the state of the store's file system.
type Space struct {
	Free    int64 // bytes available to the server
	Size    int64 // bytes of the file system
	Reserve int64 // bytes kept free: writes are refused below it
	// Failed is set while JetStream recovers from a failed write (no
	// space left on its device): it answers no write until restarted.
	Failed string
}

// Low reports whether the store refuses writes.
func (s Space) Low() bool { return s.Free < s.Reserve || s.Failed != "" }

// StoreError says why the store refuses writes: less free space than the
// reserve, or JetStream recovering from a failed write.
type StoreError struct{ Space Space }

func (e *StoreError) Error() string {
	if e.Space.Failed != "" {
		return fmt.Sprintf("recovering from a failed write (%s), %s free, reserve %s", e.Space.Failed, mib(e.Space.Free), mib(e.Space.Reserve))
	}
	return fmt.Sprintf("%s free, reserve %s", mib(e.Space.Free), mib(e.Space.Reserve))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// statfs returns the free and total bytes of the file system under dir.
func statfs(dir string) (free, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

// spaceWatch is the state of the watch; owned by the Server.
type spaceWatch struct {
	dir      string
	reserve  int64 // configured: 0 default, NoReserve, or bytes
	interval time.Duration
	// failed holds the last "no space left" error JetStream logged since
	// it (re)started, nil if none; set by the server's logger.
	failed atomic.Pointer[string]
	stop   chan struct{}
	done   chan struct{}
	// Only the watch goroutine uses these.
	low         bool          // last logged state
	lastRestart time.Time     // of JetStream
	backoff     time.Duration // before the next restart, doubling while restarts do not hold
}

// noteLog records a JetStream log line that says it could not write.
func (w *spaceWatch) noteLog(msg string) {
	if w != nil && strings.Contains(msg, "no space left on device") {
		w.failed.Store(&msg)
	}
}

// Space returns the state of the store's file system now.
func (s *Server) Space() (Space, error) {
	free, size, err := statfs(s.space.dir)
	if err != nil {
		return Space{}, err
	}
	sp := Space{Free: free, Size: size, Reserve: s.space.reserve}
	switch {
	case sp.Reserve == 0:
		sp.Reserve = DefaultReserve(size)
	case sp.Reserve < 0:
		sp.Reserve = 0
	}
	if f := s.space.failed.Load(); f != nil {
		sp.Failed = "no space left on device"
	} else if !s.ns.JetStreamEnabled() {
		sp.Failed = "jetstream disabled"
	}
	return sp, nil
}

// CheckStore returns nil when the store takes writes, else a *StoreError
// saying why not (or the error of statfs). The registry asks it before
// each write; it costs one statfs.
func (s *Server) CheckStore() error {
	sp, err := s.Space()
	if err != nil {
		return err
	}
	if sp.Low() {
		return &StoreError{Space: sp}
	}
	return nil
}

// watchSpace checks the store every interval until stop: it logs each
// transition between store_ok and store_low once, and restarts JetStream
// once there is room again after it failed writing.
func (s *Server) watchSpace() {
	defer close(s.space.done)
	t := time.NewTicker(s.space.interval)
	defer t.Stop()
	for {
		s.checkSpace()
		select {
		case <-s.space.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Server) checkSpace() {
	w := s.space
	sp, err := s.Space()
	if err != nil {
		s.log.Warn("store_check_failed", "err", err)
		return
	}
	if low := sp.Free < sp.Reserve; low != w.low {
		w.low = low
		if low {
			s.log.Warn("store_low", "free_mib", sp.Free>>20, "reserve_mib", sp.Reserve>>20, "dir", w.dir)
		} else {
			s.log.Info("store_ok", "free_mib", sp.Free>>20, "reserve_mib", sp.Reserve>>20, "dir", w.dir)
		}
	}
	if sp.Failed == "" || sp.Free < max(sp.Reserve, restartFree) {
		return
	}
	// Room again after a failed write: the file stores keep their write
	// error until reopened, so restart JetStream (stopping writes its
	// state files: not while the file system is still full).
	start := time.Now()
	if start.Before(w.lastRestart.Add(w.backoff)) {
		return
	}
	// A restart that did not hold for a minute (JetStream failed again
	// or stopped for another reason) doubles the wait before the next.
	if start.Sub(w.lastRestart) < time.Minute {
		w.backoff = min(max(2*w.backoff, w.interval), time.Minute)
	} else {
		w.backoff = 0
	}
	w.lastRestart = start
	if err := s.restartJetStream(); err != nil {
		s.log.Error("jetstream_restart_failed", "err", err)
		return
	}
	s.log.Info("jetstream_restarted", "after", sp.Failed, "took", time.Since(start).Round(time.Millisecond), "free_mib", sp.Free>>20)
}

// restartJetStream stops JetStream (keeping its files) and enables it
// again with the configuration the server started it with.
func (s *Server) restartJetStream() error {
	s.space.failed.Store(nil)
	if s.ns.JetStreamEnabled() {
		if err := s.ns.ShutdownJetStream(); err != nil {
			return fmt.Errorf("stopping jetstream: %w", err)
		}
	}
	// The API workers of the previous JetStream read the server's API
	// queues under its lock when they started, and never stop before the
	// server does; enabling sets new queues without the lock. Taking the
	// server's lock once (HTTPHandler holds it and nothing more) orders
	// those reads before the new writes (the race detector saw them
	// unordered when the server had stopped JetStream by itself).
	_ = s.ns.HTTPHandler()
	cfg := jetStreamConfig(s.opts)
	if err := s.ns.EnableJetStream(cfg); err != nil {
		return fmt.Errorf("enabling jetstream: %w", err)
	}
	return nil
}

// jetStreamConfig is the configuration server.Start enables JetStream
// with.
func jetStreamConfig(opts *server.Options) *server.JetStreamConfig {
	return &server.JetStreamConfig{
		StoreDir:     opts.StoreDir,
		SyncInterval: opts.SyncInterval,
		SyncAlways:   opts.SyncAlways,
		Strict:       !opts.NoJetStreamStrict,
		MaxMemory:    opts.JetStreamMaxMemory,
		MaxStore:     opts.JetStreamMaxStore,
		Domain:       opts.JetStreamDomain,
		CompressOK:   true,
		UniqueTag:    opts.JetStreamUniqueTag,
	}
}

// startSpaceWatch starts the watch; stopSpaceWatch (from Shutdown) ends it.
func (s *Server) startSpaceWatch() {
	go s.watchSpace() // owned by s: stopSpaceWatch joins it
}

func (s *Server) stopSpaceWatch() {
	s.stopOnce.Do(func() { close(s.space.stop) })
	<-s.space.done
}

var _ interface{ CheckStore() error } = (*Server)(nil)
