package gridd

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/testutil"
)

// TestClusterOffLoopbackIsSecured starts zgrid's server with a route port
// on every address: zgrid derives route security from the system key, so
// natsd accepts it, and a plain route to it is refused.
func TestClusterOffLoopbackIsSecured(t *testing.T) {
	port := testutil.FreePort(t)
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	p := &plane{cfg: Config{DataDir: t.TempDir(), Listen: "0.0.0.0", Port: natsd.RandomPort, Replicas: 1,
		Name: "solo", ClusterName: "zgrid", ClusterPort: port, Auth: true}, log: testutil.Logger(t), sysKey: k}
	if _, err := startNATS(context.Background(), p); err != nil {
		t.Fatalf("starting nats with a route port on 0.0.0.0: %v", err)
	}
	t.Cleanup(p.srv.Shutdown)
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(conn, `CONNECT {"verbose":false,"name":"rogue","cluster":"zgrid"}`+"\r\nPING\r\n")
	b, _ := io.ReadAll(conn)
	if strings.Contains(string(b), "INFO") || strings.Contains(string(b), "PONG") {
		t.Fatalf("route port on 0.0.0.0 answered a plain route: %q", b)
	}
}
