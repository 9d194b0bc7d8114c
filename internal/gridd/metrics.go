package gridd

import (
	"context"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/natsd"
)

// startMetrics serves the grid's metrics (--metrics): the registry's
// requests (counted as they are served, see Run), the embedded NATS
// server's traffic per account (TWINS is the relay: twins and nodes; GRID
// the grid's own connections) and its JetStream state, and the Go runtime.
func startMetrics(_ context.Context, p *plane) (func(context.Context) error, error) {
	if p.prom == nil {
		return nil, nil
	}
	if p.srv != nil {
		if err := p.prom.Register(natsCollector{srv: p.srv.NATS()}); err != nil {
			return nil, err
		}
	}
	ln, err := metrics.Listen(p.cfg.Metrics, p.cfg.MetricsAllowRemote)
	if err != nil {
		return nil, err
	}
	p.addrs.Metrics = ln.Addr().String()
	log := p.log.With("component", "metrics")
	return func(ctx context.Context) error { return metrics.Serve(ctx, ln, p.prom, log) }, nil
}

var (
	natsConnsDesc = prometheus.NewDesc("zgrid_nats_connections", "Client connections to the embedded NATS server.", nil, nil)
	natsSubsDesc  = prometheus.NewDesc("zgrid_nats_subscriptions", "Subscriptions on the embedded NATS server.", nil, nil)
	natsSlowDesc  = prometheus.NewDesc("zgrid_nats_slow_consumers_total", "Clients dropped for being slow consumers.", nil, nil)
	accConnsDesc  = prometheus.NewDesc("zgrid_nats_account_connections", "Connections of an account (TWINS: twins and nodes; GRID: the grid's own).", []string{"account"}, nil)
	accMsgsDesc   = prometheus.NewDesc("zgrid_nats_account_messages_total", "Messages an account's clients sent (in) and received (out): the relay's traffic for TWINS.", []string{"account", "direction"}, nil)
	accBytesDesc  = prometheus.NewDesc("zgrid_nats_account_bytes_total", "Bytes an account's clients sent (in) and received (out).", []string{"account", "direction"}, nil)
	jsStreamsDesc = prometheus.NewDesc("zgrid_jetstream_streams", "JetStream streams (the registry's KV buckets and event stream).", nil, nil)
	jsConsDesc    = prometheus.NewDesc("zgrid_jetstream_consumers", "JetStream consumers.", nil, nil)
	jsMsgsDesc    = prometheus.NewDesc("zgrid_jetstream_messages", "Messages stored in JetStream.", nil, nil)
	jsBytesDesc   = prometheus.NewDesc("zgrid_jetstream_bytes", "Bytes stored in JetStream.", nil, nil)
	jsStoreDesc   = prometheus.NewDesc("zgrid_jetstream_store_used_bytes", "JetStream file store in use.", nil, nil)
	jsAPIDesc     = prometheus.NewDesc("zgrid_jetstream_api_requests_total", "JetStream API requests (errors: those that failed).", []string{"result"}, nil)
)

// natsCollector reads the embedded server's state at each scrape.
type natsCollector struct{ srv *server.Server }

func (natsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{natsConnsDesc, natsSubsDesc, natsSlowDesc, accConnsDesc, accMsgsDesc, accBytesDesc,
		jsStreamsDesc, jsConsDesc, jsMsgsDesc, jsBytesDesc, jsStoreDesc, jsAPIDesc} {
		ch <- d
	}
}

func (c natsCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if v, err := c.srv.Varz(nil); err == nil {
		gauge(natsConnsDesc, float64(v.Connections))
		gauge(natsSubsDesc, float64(v.Subscriptions))
		counter(natsSlowDesc, float64(v.SlowConsumers))
	}
	if st, err := c.srv.AccountStatz(&server.AccountStatzOptions{Accounts: []string{natsd.GridAccount, natsd.TwinAccount}, IncludeUnused: true}); err == nil {
		for _, a := range st.Accounts {
			gauge(accConnsDesc, float64(a.Conns), a.Account)
			// The server's "received" is what the clients sent in.
			counter(accMsgsDesc, float64(a.Received.Msgs), a.Account, "in")
			counter(accMsgsDesc, float64(a.Sent.Msgs), a.Account, "out")
			counter(accBytesDesc, float64(a.Received.Bytes), a.Account, "in")
			counter(accBytesDesc, float64(a.Sent.Bytes), a.Account, "out")
		}
	}
	if js, err := c.srv.Jsz(nil); err == nil && !js.Disabled {
		gauge(jsStreamsDesc, float64(js.Streams))
		gauge(jsConsDesc, float64(js.Consumers))
		gauge(jsMsgsDesc, float64(js.Messages))
		gauge(jsBytesDesc, float64(js.Bytes))
		gauge(jsStoreDesc, float64(js.Store))
		counter(jsAPIDesc, float64(js.API.Total-js.API.Errors), "ok")
		counter(jsAPIDesc, float64(js.API.Errors), "error")
	}
}
