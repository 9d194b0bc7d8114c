// Package metrics serves Prometheus metrics for the node (zos --metrics)
// and the grid (zgrid --metrics): the listener rules (loopback unless the
// operator allows more), the HTTP server and the request metrics both use.
// What each program measures lives with its wiring (internal/node/node,
// internal/gridd); this package only knows client_golang.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the metrics are served.
const Path = "/metrics"

// ErrNotLoopback is returned for a listen address beyond the machine
// without the operator's explicit allow.
var ErrNotLoopback = errors.New("metrics address is not loopback")

// CheckAddr checks a listen address HOST:PORT: a loopback IP (or
// "localhost") unless allowRemote. Metrics show what runs where (workload
// counts, capacity, traffic): only the operator decides who may read
// them, by an explicit allow and the firewall in front.
func CheckAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: want HOST:PORT: %w", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("metrics address %q: bad port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if host != "" && ip == nil {
		return fmt.Errorf("metrics address %q: host must be an IP address or localhost", addr)
	}
	if (ip == nil || !ip.IsLoopback()) && !allowRemote {
		return fmt.Errorf("%w: %s serves beyond this machine; use 127.0.0.1:PORT, or allow it explicitly (--metrics-allow-remote)", ErrNotLoopback, addr)
	}
	return nil
}

// Listen checks addr (CheckAddr) and listens on it.
func Listen(addr string, allowRemote bool) (net.Listener, error) {
	if err := CheckAddr(addr, allowRemote); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	return ln, nil
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, for a program's own metrics to join.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve serves reg's metrics at Path on ln until ctx ends; it closes ln.
func Serve(ctx context.Context, ln net.Listener, reg prometheus.Gatherer, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 15 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "path", Path)
	select {
	case err := <-errc:
		return fmt.Errorf("serving metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}

// Requests counts and times the requests of a service by operation and
// outcome: NAME_requests_total{op,code} and
// NAME_request_duration_seconds{op}.
type Requests struct {
	count    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRequests registers the request metrics of namespace_subsystem on reg.
func NewRequests(reg prometheus.Registerer, namespace, subsystem, what string) *Requests {
	r := &Requests{
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "requests_total",
			Help: what + " requests by operation and outcome (ok or the error code).",
		}, []string{"op", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "request_duration_seconds",
			Help:    what + " request handling time by operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15},
		}, []string{"op"}),
	}
	reg.MustRegister(r.count, r.duration)
	return r
}

// Observe records one request of op that took d and ended with code ("ok"
// or an error code).
func (r *Requests) Observe(op string, d time.Duration, code string) {
	r.count.WithLabelValues(op, code).Inc()
	r.duration.WithLabelValues(op).Observe(d.Seconds())
}
