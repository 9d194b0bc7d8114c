package primitives

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/testutil"
)

// dirConsoleLogs keeps each machine's console log in dir/<workload id>.
type dirConsoleLogs struct{ dir string }

func (l dirConsoleLogs) ConsoleLog(wl gridtypes.WorkloadID) (string, error) {
	return filepath.Join(l.dir, string(wl)), nil
}

// loopbackDialer dials on the host for network "net1" of twin 7 and counts
// the dials per address.
type loopbackDialer struct {
	mu    sync.Mutex
	dials map[string]int
}

func (d *loopbackDialer) lookup(twin uint32, name string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if twin != 7 || name != "net1" {
		return nil, fmt.Errorf("network %q of twin %d has no resource on this node", name, twin)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.mu.Lock()
		if d.dials == nil {
			d.dials = map[string]int{}
		}
		d.dials[addr]++
		d.mu.Unlock()
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}, nil
}

func (d *loopbackDialer) count(addr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[addr]
}

// startRedis runs redis-server on port with password until stop or
// cleanup.
func startRedis(t *testing.T, port int, password string) (stop func()) {
	t.Helper()
	bin := testutil.RequireBinary(t, "redis-server")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--requirepass", password, "--dir", t.TempDir())
	var out testutil.Buffer // read while redis-server writes
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	testutil.Eventually(t, 10*time.Second, "redis-server to start", func() (bool, error) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false, fmt.Errorf("%w\n%s", err, out.String())
		}
		c.Close()
		return true, nil
	})
	return stop
}

// subscribe returns the messages published on channel, read by a separate
// connection.
func subscribe(t *testing.T, port int, password, channel string) <-chan string {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := resp.AppendRequest(nil, []byte("AUTH"), []byte(password))
	b = resp.AppendRequest(b, []byte("SUBSCRIBE"), []byte(channel))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if v, err := readAnyReply(r); err != nil || v != "OK" {
		t.Fatalf("AUTH: %v %v", v, err)
	}
	if v, err := readAnyReply(r); err != nil {
		t.Fatalf("SUBSCRIBE: %v %v", v, err)
	}
	ch := make(chan string, 10000)
	go func() {
		defer close(ch)
		for {
			v, err := readAnyReply(r)
			if err != nil {
				return
			}
			a, ok := v.([]any)
			if !ok || len(a) != 3 || string(a[0].([]byte)) != "message" {
				continue
			}
			ch <- string(a[2].([]byte))
		}
	}()
	return ch
}

// readAnyReply reads one RESP2 reply from a server the test trusts (the
// subscriber's side): a string, an integer, nil, a []byte or an []any.
func readAnyReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, fmt.Errorf("malformed reply %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, fmt.Errorf("redis: %s", body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		b := make([]byte, n+2)
		_, err = io.ReadFull(r, b)
		return b[:n], err
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readAnyReply(r); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("malformed reply %q", line)
}

// expect reads want from ch in order, failing on anything else.
func expect(t *testing.T, ch <-chan string, want ...string) {
	t.Helper()
	for i, w := range want {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatalf("message %d: subscription closed, want %q", i, w)
			}
			if got != w {
				t.Fatalf("message %d: got %q, want %q", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d: nothing after 10s, want %q", i, w)
		}
	}
}

// quietWindow is how long a test watches for a line or a dial that must
// not come: nothing signals that it will not, and the streamers poll the
// logs every 20ms and retry within 100ms, so this is several rounds.
const quietWindow = 300 * time.Millisecond

// expectNothing fails if ch yields a message within d.
func expectNothing(t *testing.T, ch <-chan string, d time.Duration) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("got unexpected message %q", got)
	case <-time.After(d):
	}
}

func appendLog(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func numbered(prefix string, from, to int) []string {
	var l []string
	for i := from; i < to; i++ {
		l = append(l, fmt.Sprintf("%s %04d", prefix, i))
	}
	return l
}

const zlogsVM = `{"flist":"f","network":{"interfaces":[{"network":"net1","ip":"10.1.2.3"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`

// zlogsWorkload returns zlogs workload name of a deployment of twin 7 with
// a zmachine "vm".
func zlogsWorkload(contract uint64, name, output string) *provision.Workload {
	data, _ := json.Marshal(gridtypes.ZLogs{ZMachine: "vm", Output: output})
	d := &gridtypes.Deployment{TwinID: 7, ContractID: contract, Workloads: []gridtypes.Workload{
		{Name: "vm", Type: gridtypes.ZMachineType, Data: json.RawMessage(zlogsVM)},
		{Name: name, Type: gridtypes.ZLogsType, Data: data},
	}}
	return &provision.Workload{Workload: d.Workloads[1], ID: gridtypes.NewWorkloadID(7, contract, name), Deployment: d}
}

var loopback = must(egress.ParseAllow([]string{"loopback"}))

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newTestZLogs(t *testing.T) (*ZLogsManager, string, *loopbackDialer) {
	t.Helper()
	dir := t.TempDir()
	dialer := &loopbackDialer{}
	// The test's outputs are on loopback: the node's policy allows it.
	m := NewZLogsManager(ZLogsConfig{Poll: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Timeout: 2 * time.Second,
		Egress: &egress.Policy{Allow: loopback}},
		dirConsoleLogs{dir}, dialer.lookup, nil)
	t.Cleanup(m.Close)
	return m, dir, dialer
}

func TestZLogsRedis(t *testing.T) {
	port := testutil.FreePort(t)
	stopRedis := startRedis(t, port, "s3cret")
	msgs := subscribe(t, port, "s3cret", "vmlogs")
	m, dir, dialer := newTestZLogs(t)
	log := filepath.Join(dir, string(gridtypes.NewWorkloadID(7, 1, "vm")))
	wl := zlogsWorkload(1, "logs", fmt.Sprintf("redis://:s3cret@127.0.0.1:%d/vmlogs", port))
	ctx := context.Background()

	// The machine has not written yet: provisioning does not wait for it.
	if _, err := m.Provision(ctx, wl); err != nil {
		t.Fatal(err)
	}
	appendLog(t, log, numbered("boot", 0, 50)...)
	expect(t, msgs, numbered("boot", 0, 50)...)

	// Provisioning again (a node restart) keeps the one streamer: each line
	// arrives once.
	if _, err := m.Provision(ctx, wl); err != nil {
		t.Fatal(err)
	}
	appendLog(t, log, "after restart")
	expect(t, msgs, "after restart")
	expectNothing(t, msgs, quietWindow)

	// The node rotates the log in place; nothing is lost nor repeated.
	appendLog(t, log, numbered("before rotation", 0, 20)...)
	expect(t, msgs, numbered("before rotation", 0, 20)...)
	testutil.KeepTail(t, log, 100)
	appendLog(t, log, numbered("after rotation", 0, 20)...)
	expect(t, msgs, numbered("after rotation", 0, 20)...)
	expectNothing(t, msgs, quietWindow)

	// The output goes away: what is written meanwhile arrives once it is back.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dials := dialer.count(addr)
	stopRedis()
	appendLog(t, log, "while down")
	testutil.Eventually(t, 5*time.Second, "the streamer to find its output gone and redial", func() (bool, error) {
		n := dialer.count(addr)
		return n > dials, fmt.Errorf("%d dials since the output went away, want at least one", n-dials)
	})
	startRedis(t, port, "s3cret")
	msgs = subscribe(t, port, "s3cret", "vmlogs")
	appendLog(t, log, "back")
	deadline := time.After(10 * time.Second)
	var got []string
	for len(got) == 0 || got[len(got)-1] != "back" {
		select {
		case s := <-msgs:
			got = append(got, s)
		case <-deadline:
			t.Fatalf("after the output came back, got %q, want it to end with %q", got, "back")
		}
	}
	// "while down" may have been published before the subscription.
	if len(got) > 2 || (len(got) == 2 && got[0] != "while down") {
		t.Fatalf("after the output came back, got %q", got)
	}

	// Deprovision stops the stream.
	if err := m.Deprovision(ctx, wl); err != nil {
		t.Fatal(err)
	}
	if m.Running(wl.ID) {
		t.Fatal("streamer still running after deprovision")
	}
	appendLog(t, log, "after deprovision")
	expectNothing(t, msgs, quietWindow)
}

func TestZLogsUnreachableDoesNotBlock(t *testing.T) {
	port := testutil.FreePort(t)
	startRedis(t, port, "pw")
	msgs := subscribe(t, port, "pw", "good")
	m, dir, dialer := newTestZLogs(t)
	ctx := context.Background()

	dead := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) // nothing listens
	bad := zlogsWorkload(2, "bad", "redis://"+dead+"/ch")
	start := time.Now()
	if _, err := m.Provision(ctx, bad); err != nil {
		t.Fatal(err)
	}
	// A wrong password fails at connection time and is retried too.
	wrongPass := zlogsWorkload(3, "wrongpass", fmt.Sprintf("redis://:nope@127.0.0.1:%d/good", port))
	if _, err := m.Provision(ctx, wrongPass); err != nil {
		t.Fatal(err)
	}
	good := zlogsWorkload(4, "good", fmt.Sprintf("redis://:pw@127.0.0.1:%d/good", port))
	if _, err := m.Provision(ctx, good); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("provisioning took %s with an unreachable output", d)
	}
	appendLog(t, filepath.Join(dir, string(gridtypes.NewWorkloadID(7, 3, "vm"))), "not authenticated")
	appendLog(t, filepath.Join(dir, string(gridtypes.NewWorkloadID(7, 4, "vm"))), "good line")
	expect(t, msgs, "good line")
	expectNothing(t, msgs, quietWindow)

	testutil.Eventually(t, 5*time.Second, "retries of the unreachable output", func() (bool, error) {
		n := dialer.count(dead)
		return n >= 3, fmt.Errorf("dialed the unreachable output %d times, want retries", n)
	})
	start = time.Now()
	if err := m.Deprovision(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("deprovisioning a retrying streamer took %s", d)
	}
	n := dialer.count(dead)
	testutil.Never(t, quietWindow, "a dial after deprovision", func() (bool, error) {
		got := dialer.count(dead)
		return got != n, fmt.Errorf("dialed %d more times", got-n)
	})
}

func TestZLogsWebSocket(t *testing.T) {
	got := make(chan string, 100)
	srv := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		for {
			var s string
			if err := websocket.Message.Receive(ws, &s); err != nil {
				return
			}
			got <- s
		}
	}))
	t.Cleanup(srv.Close)
	m, dir, _ := newTestZLogs(t)
	wl := zlogsWorkload(5, "ws", "ws://"+strings.TrimPrefix(srv.URL, "http://")+"/logs")
	if _, err := m.Provision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, string(gridtypes.NewWorkloadID(7, 5, "vm")))
	appendLog(t, log, "one", "two\r")
	// A prompt without a newline is sent once it stays unfinished.
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("login: ")
	f.Close()
	expect(t, got, "one", "two", "login: ")
}

func TestZLogsProvisionErrors(t *testing.T) {
	m, _, _ := newTestZLogs(t)
	tests := []struct {
		name, output, want string
	}{
		{"no channel", "redis://127.0.0.1:6379", "names no channel"},
		{"scheme", "http://127.0.0.1/x", `scheme "http"`},
		{"no host", "ws:///x", "has no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Provision(context.Background(), zlogsWorkload(9, "l", tt.output))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	wl := zlogsWorkload(9, "l", "ws://127.0.0.1:1/x")
	wl.Deployment.Workloads = wl.Deployment.Workloads[1:]
	if _, err := m.Provision(context.Background(), wl); err == nil || !strings.Contains(err.Error(), "not a zmachine") {
		t.Fatalf("without the zmachine: got %v", err)
	}
	if m.Running(wl.ID) {
		t.Fatal("a failed provision left a streamer")
	}
}

func TestLineSplitter(t *testing.T) {
	var l lineSplitter
	l.add([]byte("a\r\nb\nc"))
	if got := l.take(time.Hour); len(got) != 2 || string(got[0]) != "a" || string(got[1]) != "b" {
		t.Fatalf("got %q, want [a b]", got)
	}
	// Not confirmed sent: given again, with the new ones.
	l.add([]byte("\n"))
	if got := l.take(time.Hour); len(got) != 3 || string(got[2]) != "c" {
		t.Fatalf("got %q, want [a b c]", got)
	}
	l.sent()
	l.add(bytes.Repeat([]byte("x"), maxLine+10))
	got := l.take(time.Hour)
	if len(got) != 1 || len(got[0]) != maxLine {
		t.Fatalf("long line: got %d pieces", len(got))
	}
	l.sent()
	if got := l.take(0); len(got) != 1 || len(got[0]) != 10 {
		t.Fatalf("rest of the long line: got %q", got)
	}
}
