package zdb

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestRedisCLI drives the server with the stock redis-cli, one connection
// per script, in both modes, with namespaces and passwords.
func TestRedisCLI(t *testing.T) {
	cli := testutil.RequireBinary(t, "redis-cli")
	tests := []struct {
		name   string
		mode   Mode
		script string
		want   string
	}{
		{
			name: "user mode",
			mode: ModeUser,
			script: `PING
SET foo bar
GET foo
SET foo bar
EXISTS foo
DEL foo
GET foo
DEL foo
SET a 1
DBSIZE
SCAN`,
			want: `PONG
"foo"
"bar"
(nil)
(integer) 1
OK
(nil)
(error) Key not found
"a"
(integer) 1
1) "\x01\x00\x00\x00T\x00\x00\x00"
2) 1) 1) "a"
      2) (integer) 1
      3) (integer) 1700000000`,
		},
		{
			name: "seq mode",
			mode: ModeSeq,
			script: `SET "" hello
SET "" world
GET "\x01\x00\x00\x00"
SET "\x00\x00\x00\x00" HELLO
GET "\x00\x00\x00\x00"
SET nokey x
DEL "\x01\x00\x00\x00"
DBSIZE`,
			want: `"\x00\x00\x00\x00"
"\x01\x00\x00\x00"
"world"
"\x00\x00\x00\x00"
"HELLO"
(error) Invalid key, only update authorized
OK
(integer) 1`,
		},
		{
			name: "namespaces and passwords",
			mode: ModeUser,
			script: `NSNEW 162-132880-myzdb
AUTH wrong
AUTH admin
NSNEW 162-132880-myzdb
NSSET 162-132880-myzdb password s3cret
NSSET 162-132880-myzdb public 0
NSSET 162-132880-myzdb maxsize 4
NSLIST
SELECT 162-132880-myzdb
SELECT 162-132880-myzdb nope
SELECT 162-132880-myzdb s3cret
SET k abcd
SET l e
GET k
SELECT default
NSDEL 162-132880-myzdb
NSINFO 162-132880-myzdb`,
			want: `(error) Permission denied
(error) Access denied
OK
OK
OK
OK
OK
1) "162-132880-myzdb"
2) "default"
(error) Namespace protected and private
(error) Access denied
OK
"k"
(error) No space left on this namespace
"abcd"
OK
OK
(error) Namespace not found`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), func(c *Config) {
				c.Mode = tt.mode
				c.Now = fixedClock
			})
			defer s.Close()
			addr, _ := startServer(t, ServerConfig{Admin: "admin"}, s)
			host, port, _ := net.SplitHostPort(addr)
			cmd := exec.Command(cli, "--no-raw", "-h", host, "-p", port)
			cmd.Stdin = strings.NewReader(tt.script + "\n")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("redis-cli: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
