package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// BenchmarkProxy measures small HTTPS requests per second through the
// gateway (TLS terminated, HTTP to the backend, keep-alive) against plain
// requests to the backend directly, with 8 concurrent clients for 2 s
// each, and reports both and their ratio. Run with -benchtime=1x.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	certs := &SelfSigned{}
	p := New(Config{}, certs, testutil.Logger(b))
	if err := p.Set("1-1-app", Route{FQDN: "app.gw.test", Backends: []string{backend.URL}}); err != nil {
		b.Fatal(err)
	}
	serveOn(b, p, ln)

	viaGW := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 8,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		}}
	direct := &http.Transport{MaxIdleConnsPerHost: 8}
	defer viaGW.CloseIdleConnections()
	defer direct.CloseIdleConnections()
	b.ResetTimer()
	var gw, dir float64
	for i := 0; i < b.N; i++ {
		gw = rate(b, &http.Client{Transport: viaGW}, "https://app.gw.test/")
		dir = rate(b, &http.Client{Transport: direct}, backend.URL)
	}
	b.ReportMetric(gw, "gateway-req/s")
	b.ReportMetric(dir, "direct-req/s")
	b.ReportMetric(gw/dir, "ratio")
}

func rate(b *testing.B, c *http.Client, url string) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(2 * time.Second)
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
