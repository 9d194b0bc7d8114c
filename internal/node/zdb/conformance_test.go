package zdb

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// The replies below are 0-db's own (threefoldtech/0-db, zdbd/commands*.c
// and zdbd/redis.c at 1630159), checked with a raw socket and with the
// stock redis-cli, in user and sequential mode. Keys are at most 255 bytes
// everywhere: a longer one is "Invalid key" for reads and deletes and "Key
// too large" for SET; a command given the wrong count of arguments answers
// "Unexpected arguments"; an empty argument "Invalid argument".
func TestZeroDBReplies(t *testing.T) {
	long := strings.Repeat("k", 511)
	common := []struct {
		want string
		args []string
	}{
		{"-Unexpected arguments", []string{"GET"}},
		{"-Unexpected arguments", []string{"GET", "a", "b"}},
		{"-Invalid argument", []string{"GET", ""}},
		{"-Invalid key", []string{"GET", long}},
		{"-Invalid key", []string{"EXISTS", long}},
		{"-Invalid key", []string{"CHECK", long}},
		{"-Invalid key", []string{"LENGTH", long}},
		{"-Invalid key", []string{"KEYTIME", long}},
		{"-Invalid key", []string{"DEL", long}},
		{"-Invalid key", []string{"MGET", "a", long}},
		{"-Invalid arguments", []string{"MGET"}},
		{"-Unexpected arguments", []string{"EXISTS"}},
		{"-Key too large", []string{"SET", long, "v"}},
		{"-Command not supported", []string{"NOPE"}},
		{"-Permission denied", []string{"RELOAD", "default"}},
	}
	for _, mode := range []Mode{ModeUser, ModeSeq} {
		t.Run(string(mode), func(t *testing.T) {
			s := openStore(t, t.TempDir(), func(c *Config) { c.Mode = mode })
			defer s.Close()
			addr, _ := startServer(t, ServerConfig{Admin: "adm"}, s)
			c := dial(t, addr)
			for _, st := range common {
				c.expect(st.want, st.args...)
			}
			// SETX is SET's alias; RELOAD reads the namespace's files
			// again and serves the same keys.
			key := `"x"`
			args := []string{"SETX", "x", "v1"}
			if mode == ModeSeq {
				key, args = `"\x00\x00\x00\x00"`, []string{"SETX", "", "v1"}
			}
			c.expect(key, args...)
			c.expect("+OK", "AUTH", "adm")
			c.expect("-Namespace not found", "RELOAD", "nope")
			c.expect("-Unexpected arguments", "RELOAD")
			c.expect("+OK", "RELOAD", "default")
			c.expect(":1", "DBSIZE")
			c.expect(`"v1"`, "GET", strings.Trim(strings.ReplaceAll(key, `\x00`, "\x00"), `"`))
		})
	}
}

// An empty request array gets 0-db's "Missing arguments" and the
// connection closes: the client is never left waiting for a reply.
func TestZeroDBEmptyArray(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	addr, _ := startServer(t, ServerConfig{}, s)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte("*0\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := nc.Read(buf)
	if err != nil || string(buf[:n]) != "-Missing arguments\r\n" {
		t.Fatalf("got %q %v, want -Missing arguments", buf[:n], err)
	}
	if _, err := nc.Read(buf); err == nil {
		t.Fatal("connection still open after an empty array")
	}
}

// The same replies through the stock redis-cli.
func TestZeroDBRepliesRedisCLI(t *testing.T) {
	cli := testutil.RequireBinary(t, "redis-cli")
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	addr, _ := startServer(t, ServerConfig{Admin: "admin"}, s)
	host, port, _ := net.SplitHostPort(addr)
	long := strings.Repeat("k", 511)
	script := "EXISTS " + long + "\nGET " + long + "\nSET " + long + " v\nMGET\nRELOAD default\nAUTH admin\nSET a 1\nRELOAD default\nGET a\n"
	cmd := exec.Command(cli, "--no-raw", "-h", host, "-p", port)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	want := `(error) Invalid key
(error) Invalid key
(error) Key too large
(error) Invalid arguments
(error) Permission denied
OK
"a"
OK
"1"`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
