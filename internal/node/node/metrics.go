package node

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/version"
)

// nodeMetrics are the node's Prometheus metrics (zos node --metrics): the
// events counted as they happen; the state (capacity, workloads, pools) is
// read at each scrape by nodeCollector.
type nodeMetrics struct {
	reg        *prometheus.Registry
	provision  *prometheus.HistogramVec
	vmRestarts prometheus.Counter
	vmFailures prometheus.Counter
}

func newNodeMetrics() *nodeMetrics {
	m := &nodeMetrics{
		reg: metrics.NewRegistry(),
		provision: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zos_node_provision_duration_seconds",
			Help: "Time a workload manager took, by workload type, operation (provision, restore, deprovision) and result (ok, error).",
			// From a zdb namespace (ms) to a VM booting under emulation
			// (minutes).
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"type", "op", "result"}),
		vmRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zos_node_vm_restarts_total", Help: "Crashed VMs the node restarted.",
		}),
		vmFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zos_node_vm_failures_total", Help: "VMs the node failed to restart (decommissioned ones included).",
		}),
	}
	m.reg.MustRegister(m.provision, m.vmRestarts, m.vmFailures)
	return m
}

// observeProvision is the engine's Observe.
func (m *nodeMetrics) observeProvision(t gridtypes.WorkloadType, op string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.provision.WithLabelValues(string(t), op, result).Observe(took.Seconds())
}

// vmEvent counts a VM monitor event (nil-safe: no metrics, nothing).
func (m *nodeMetrics) vmEvent(err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.vmRestarts.Inc()
		return
	}
	m.vmFailures.Inc()
}

// engineConfig adds the metrics' hook to the engine's configuration.
func (m *nodeMetrics) engineConfig(cfg provision.Config) provision.Config {
	if m != nil {
		cfg.Observe = m.observeProvision
	}
	return cfg
}

// startMetrics serves the node's metrics (--metrics), once everything they
// read runs.
func (n *Node) startMetrics(_ context.Context, r *runner) error {
	if n.metrics == nil {
		return nil
	}
	if err := n.metrics.reg.Register(nodeCollector{n}); err != nil {
		return err
	}
	ln, err := metrics.Listen(n.cfg.Metrics, n.cfg.MetricsAllowRemote)
	if err != nil {
		return err
	}
	log := n.log.With("component", "metrics")
	r.serve("metrics", func(ctx context.Context) error { return metrics.Serve(ctx, ln, n.metrics.reg, log) })
	return nil
}

var (
	infoDesc     = prometheus.NewDesc("zos_node_info", "The node: its id, farm, version and hypervisor (always 1).", []string{"node_id", "farm_id", "version", "hypervisor"}, nil)
	capDesc      = prometheus.NewDesc("zos_node_capacity", "Capacity by resource (cru: cores, mru/sru/hru: bytes, ipv4u: addresses) and kind: total, workloads (used by deployments), system (kept by the node).", []string{"resource", "kind"}, nil)
	deplDesc     = prometheus.NewDesc("zos_node_deployments", "Active deployments.", nil, nil)
	wlDesc       = prometheus.NewDesc("zos_node_workloads", "Workloads of stored deployments by type and state.", []string{"type", "state"}, nil)
	poolSizeDesc = prometheus.NewDesc("zos_node_pool_size_bytes", "Size of a storage pool.", []string{"pool", "type"}, nil)
	poolUsedDesc = prometheus.NewDesc("zos_node_pool_used_bytes", "Allocated space of a storage pool.", []string{"pool", "type"}, nil)
	poolBadDesc  = prometheus.NewDesc("zos_node_pool_broken", "1 when a storage pool cannot be used.", []string{"pool", "type"}, nil)
	vmsDesc      = prometheus.NewDesc("zos_node_vms_running", "VMs running on the node.", nil, nil)
	scrapeDesc   = prometheus.NewDesc("zos_node_scrape_errors", "Parts of the node's state the last scrape could not read.", nil, nil)
)

// nodeCollector reads the node's state at each scrape.
type nodeCollector struct{ n *Node }

func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{infoDesc, capDesc, deplDesc, wlDesc, poolSizeDesc, poolUsedDesc, poolBadDesc, vmsDesc, scrapeDesc} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	var errs []error
	gauge(infoDesc, 1, strconv.FormatUint(uint64(n.ID()), 10), strconv.FormatUint(uint64(n.farmID.Load()), 10), version.String(), n.hyper.Name)
	capacity := func(kind string, c gridtypes.Capacity) {
		gauge(capDesc, float64(c.CRU), "cru", kind)
		gauge(capDesc, float64(c.MRU), "mru", kind)
		gauge(capDesc, float64(c.SRU), "sru", kind)
		gauge(capDesc, float64(c.HRU), "hru", kind)
		gauge(capDesc, float64(c.IPV4U), "ipv4u", kind)
	}
	capacity("total", n.Total())
	capacity("system", n.Reserved())
	if used, err := n.engine.Used(); err == nil {
		capacity("workloads", used)
	} else {
		errs = append(errs, err)
	}
	if all, err := n.store.All(); err == nil {
		active := 0
		counts := map[[2]string]int{}
		for _, d := range all {
			if provision.Active(d) {
				active++
			}
			for _, wl := range d.Workloads {
				counts[[2]string{string(wl.Type), string(wl.Result.State)}]++
			}
		}
		gauge(deplDesc, float64(active))
		for k, v := range counts {
			gauge(wlDesc, float64(v), k[0], k[1])
		}
	} else {
		errs = append(errs, err)
	}
	for _, p := range n.Pools() {
		gauge(poolSizeDesc, float64(p.Size), p.Name, p.Type)
		gauge(poolUsedDesc, float64(p.Used), p.Name, p.Type)
		broken := 0.0
		if p.Broken != "" {
			broken = 1
		}
		gauge(poolBadDesc, broken, p.Name, p.Type)
	}
	if n.vms != nil {
		gauge(vmsDesc, float64(len(n.vms.vms.List())))
	}
	gauge(scrapeDesc, float64(len(errs)))
}
