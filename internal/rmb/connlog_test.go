package rmb

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/testutil"
)

// A grid that goes away and comes back shows in the log of a connection
// with ConnLogging as one grid_disconnected line with the error and one
// grid_reconnected line, however many reconnect attempts failed between.
func TestConnLoggingOncePerTransition(t *testing.T) {
	g := newTestGrid(t)
	k := g.twin(t, 1)
	var buf testutil.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	opts := append(ConnLogging(log), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	nc := g.connect(t, k, opts...)
	count := func(msg string) int { return strings.Count(buf.String(), "msg="+msg+" ") }

	port := g.srv.Addr().(*net.TCPAddr).Port
	g.srv.Shutdown()
	g.srv.WaitForShutdown()
	testutil.Eventually(t, 10*time.Second, "grid_disconnected logged", func() (bool, error) {
		return count("grid_disconnected") == 1, nil
	})
	// Let several reconnect attempts fail.
	testutil.Eventually(t, 10*time.Second, "reconnect attempts", func() (bool, error) {
		return nc.Stats().Reconnects >= 3 || nc.Status() == nats.RECONNECTING, nil
	})
	g.start(t, port)
	testutil.Eventually(t, 20*time.Second, "grid_reconnected logged", func() (bool, error) {
		return count("grid_reconnected") == 1 && nc.IsConnected(), nil
	})
	if got := count("grid_disconnected"); got != 1 {
		t.Errorf("got %d grid_disconnected lines, want 1:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "err=") {
		t.Errorf("got %q, want the disconnect's error", buf.String())
	}
	nc.Close()
	testutil.Eventually(t, 5*time.Second, "grid_connection_closed logged", func() (bool, error) {
		return count("grid_connection_closed") == 1, nil
	})
}
