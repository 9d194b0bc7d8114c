package primitives

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/node/qsfs/fs"
	"github.com/zos-go/zos/internal/qsfs"
)

// qsfsMetrics serves a qsfs's figures in the Prometheus text format on
// http://<ip>:<port>/<token>/metrics. The token is random, kept in the
// cache volume, and given only in the workload's result (which only the
// deployment's twin reads): anyone else who reaches the port gets 404.
// Backends are labelled by position, never by address.
type qsfsMetrics struct {
	endpoint string
	srv      *http.Server
	done     chan struct{}

	mu         sync.Mutex // guards the last repair's figures
	repairs    uint64
	repairErrs uint64
	lastRepair time.Time
	lastReport qsfs.RepairReport
}

// qsfsFigures is what the metrics read.
type qsfsFigures interface {
	figures() (qsfs.Status, fs.Stats)
}

func (in *qsfsInstance) figures() (qsfs.Status, fs.Stats) { return in.store.Status(), in.fs.Stats() }

// serveMetrics listens on ip at the state's port (a new one when it is 0
// or taken) and serves src's figures; state.Port is set to the port.
func serveMetrics(ip string, state *metricsState, src qsfsFigures, log *slog.Logger) (*qsfsMetrics, error) {
	ln, err := net.Listen("tcp", state.addr(ip))
	if err != nil && state.Port != 0 {
		state.Port = 0
		ln, err = net.Listen("tcp", state.addr(ip))
	}
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	state.Port = ln.Addr().(*net.TCPAddr).Port
	m := &qsfsMetrics{
		endpoint: "http://" + state.addr(ip) + "/" + state.Token + "/metrics",
		done:     make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+state.Token+"/metrics", func(w http.ResponseWriter, _ *http.Request) {
		st, fst := src.figures()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(m.render(st, fst))
	})
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, MaxHeaderBytes: 8 << 10}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("qsfs_metrics_stopped", "err", err)
		}
	}()
	return m, nil
}

func (m *qsfsMetrics) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	<-m.done
}

// noteRepair records a repair's outcome.
func (m *qsfsMetrics) noteRepair(rep qsfs.RepairReport, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.repairs++
	if err != nil {
		m.repairErrs++
		return
	}
	m.lastRepair, m.lastReport = time.Now(), rep
}

// render writes the figures in the Prometheus text format.
func (m *qsfsMetrics) render(st qsfs.Status, fst fs.Stats) []byte {
	var b bytes.Buffer
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	val := func(name, labels string, v any) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(&b, "%s%s %v\n", name, labels, v)
	}
	// Backends by position: kind, group and index in the group.
	labels := make([]string, len(st.Backends))
	idx := map[int]int{}
	for i, bs := range st.Backends {
		kind := "data"
		if bs.Meta {
			kind = "meta"
		}
		labels[i] = fmt.Sprintf(`kind=%q,group="%d",index="%d"`, kind, bs.Group, idx[bs.Group])
		idx[bs.Group]++
	}
	backend := func(name, typ, help string, v func(qsfs.BackendStatus) any) {
		metric(name, typ, help)
		for i, bs := range st.Backends {
			val(name, labels[i], v(bs))
		}
	}
	backend("qsfs_backend_up", "gauge", "1 when the last call to the backend succeeded.", func(bs qsfs.BackendStatus) any {
		if bs.Healthy {
			return 1
		}
		return 0
	})
	backend("qsfs_backend_errors_total", "counter", "Calls to the backend that failed.", func(bs qsfs.BackendStatus) any { return bs.Errors })
	backend("qsfs_backend_written_total", "counter", "Values written to the backend.", func(bs qsfs.BackendStatus) any { return bs.Written })
	backend("qsfs_backend_read_total", "counter", "Values read from the backend.", func(bs qsfs.BackendStatus) any { return bs.Read })

	one := func(name, typ, help string, v any) {
		metric(name, typ, help)
		val(name, "", v)
	}
	one("qsfs_objects", "gauge", "Objects stored on the backends.", st.Objects)
	one("qsfs_stored_bytes", "gauge", "Plain bytes of the objects stored on the backends.", st.Bytes)
	one("qsfs_shards_missing_total", "counter", "Shards found missing by reads and repairs.", st.ShardsMissing)
	one("qsfs_shards_corrupt_total", "counter", "Shards found corrupt by reads and repairs.", st.ShardsCorrupt)
	one("qsfs_shards_repaired_total", "counter", "Shards rebuilt and rewritten by repairs.", st.ShardsRepaired)
	m.mu.Lock()
	repairs, repairErrs, last, rep := m.repairs, m.repairErrs, m.lastRepair, m.lastReport
	m.mu.Unlock()
	one("qsfs_repairs_total", "counter", "Repairs run.", repairs)
	one("qsfs_repair_errors_total", "counter", "Repairs that failed.", repairErrs)
	var ts int64
	if !last.IsZero() {
		ts = last.Unix()
	}
	one("qsfs_repair_last_success_timestamp_seconds", "gauge", "When the last repair succeeded (0: none yet).", ts)
	one("qsfs_repair_unrecoverable_chunks", "gauge", "Chunks the last repair found with fewer than minimal_shards valid shards.", rep.Unrecoverable)
	one("qsfs_repair_degraded_chunks", "gauge", "Chunks the last repair could not spread to survive the configured losses.", rep.Degraded)
	one("qsfs_cache_bytes", "gauge", "Bytes of blocks in the local cache.", fst.CacheBytes)
	one("qsfs_cache_max_bytes", "gauge", "Bound of the local cache.", fst.CacheMax)
	one("qsfs_upload_backlog_blocks", "gauge", "Blocks written locally, not yet on the backends.", fst.BacklogBlocks)
	one("qsfs_upload_backlog_bytes", "gauge", "Bytes written locally, not yet on the backends.", fst.BacklogBytes)
	one("qsfs_open_blocks", "gauge", "Blocks being written, in memory.", fst.OpenBlocks)
	one("qsfs_uploads_total", "counter", "Blocks uploaded to the backends.", fst.Uploads)
	one("qsfs_upload_bytes_total", "counter", "Bytes uploaded to the backends.", fst.UploadBytes)
	one("qsfs_upload_errors_total", "counter", "Block uploads that failed.", fst.UploadErrors)
	one("qsfs_fetches_total", "counter", "Blocks fetched back from the backends.", fst.Fetches)
	one("qsfs_fetch_bytes_total", "counter", "Bytes fetched back from the backends.", fst.FetchBytes)
	one("qsfs_evictions_total", "counter", "Clean blocks evicted from the cache.", fst.Evictions)
	one("qsfs_checkpoints_total", "counter", "Metadata records written.", fst.Checkpoints)
	one("qsfs_generation", "gauge", "Generation of the file system's metadata.", strconv.FormatUint(fst.Generation, 10))
	return b.Bytes()
}
