package zdb

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/testutil"
)

func goBinary(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go"
	}
	testutil.Skip(t, "needs the go tool to build zos")
	return ""
}

// buildZos builds the zos binary into a temporary directory.
func buildZos(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zos")
	cmd := exec.Command(goBinary(t), "build", "-o", bin, "github.com/zos-go/zos/cmd/zos")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building zos: %v\n%s", err, out)
	}
	return bin
}

var addrRE = regexp.MustCompile(`msg=serving .*addr=(\S+)`)

// startZdb starts `zos zdb` and returns its address; the process is killed
// at the end of the test whatever happens.
func startZdb(t *testing.T, bin, dir string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	args := append([]string{"zdb", "--data", dir + "/data", "--index", dir + "/index",
		"--listen", "127.0.0.1", "--port", "0"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting zos zdb: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addrCh := make(chan string, 1)
	var logMu sync.Mutex
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	select {
	case addr := <-addrCh:
		return cmd, addr
	case <-exited:
	case <-time.After(60 * time.Second):
	}
	logMu.Lock()
	defer logMu.Unlock()
	t.Fatalf("zos zdb did not start:\n%s", logs.String())
	return nil, ""
}

// TestCrashRecovery kills the server with SIGKILL while writers send SETs
// under --sync always; after each restart every acknowledged key must read
// back with its value, and the store must accept writes.
func TestCrashRecovery(t *testing.T) {
	bin := buildZos(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	acked := map[string][]byte{}
	const rounds, writers = 5, 4
	for round := 0; round < rounds; round++ {
		cmd, addr := startZdb(t, bin, dir, "--sync", "always", "--datasize", "1048576")
		verify(t, addr, acked)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dialErr(addr)
				if c == nil {
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				batch := 1 + w*3 // writers 1..3 pipeline 4, 7 and 10 requests
				for i := 0; ; i += batch {
					var req []byte
					keys := make([]string, batch)
					values := make([][]byte, batch)
					for j := range keys {
						keys[j] = fmt.Sprintf("r%d-w%d-%d", round, w, i+j)
						values[j] = make([]byte, 100+r.IntN(20000))
						for k := range values[j] {
							values[j][k] = byte(r.IntN(256))
						}
						req = resp.AppendRequest(req, []byte("SET"), []byte(keys[j]), values[j])
					}
					if _, err := c.Write(req); err != nil {
						return
					}
					for j := range keys {
						rep, err := resp.ReadReply(br, resp.DefaultLimits)
						if err != nil {
							return
						}
						if string(rep.Str) != keys[j] {
							t.Errorf("SET %s: got %s", keys[j], rep)
							return
						}
						mu.Lock()
						acked[keys[j]] = values[j]
						mu.Unlock()
					}
				}
			}()
		}
		// The crash under test: kill at a random moment of the writes.
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		wg.Wait()
		t.Logf("round %d: %d acknowledged keys in total", round, len(acked))
	}
	_, addr := startZdb(t, bin, dir, "--sync", "always")
	verify(t, addr, acked)
	c := dial(t, addr)
	c.expect(`"after"`, "SET", "after", "crash")
	c.expect(`"crash"`, "GET", "after")
}

func verify(t *testing.T, addr string, want map[string][]byte) {
	t.Helper()
	c := dial(t, addr)
	var req []byte
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
		req = resp.AppendRequest(req, []byte("GET"), []byte(k))
	}
	go c.c.Write(req)
	for _, k := range keys {
		r, err := c.read()
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		if r.Nil || string(r.Str) != string(want[k]) {
			t.Fatalf("acknowledged key %s: got %d bytes (nil %v), want %d bytes", k, len(r.Str), r.Nil, len(want[k]))
		}
	}
}
