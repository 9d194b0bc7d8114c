package zdb

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/testutil"
)

func TestServerCommands(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	addr, _ := startServer(t, ServerConfig{Admin: "adm"}, s)
	c := dial(t, addr)
	steps := []struct {
		want string
		args []string
	}{
		{"+PONG", []string{"ping"}},
		{`"k"`, []string{"SET", "k", "v1"}},
		{"(nil)", []string{"SET", "k", "v1"}},
		{`"v1"`, []string{"GET", "k"}},
		{`"k"`, []string{"SET", "k", "v2"}},
		{`["v2" (nil)]`, []string{"MGET", "k", "nope"}},
		{":1", []string{"EXISTS", "k"}},
		{":0", []string{"EXISTS", "nope"}},
		{":1", []string{"CHECK", "k"}},
		{":2", []string{"LENGTH", "k"}},
		{":1", []string{"DBSIZE"}},
		{"-Key too large", []string{"SET", strings.Repeat("x", 256), "v"}},
		{"-Unexpected arguments", []string{"GET"}},
		{"-Command not supported", []string{"FOO"}},
		{"-Permission denied", []string{"NSNEW", "x"}},
		{"-Permission denied", []string{"SET", "k", "v", "12"}},
		{"-Access denied", []string{"AUTH", "bad"}},
		{"+OK", []string{"AUTH", "adm"}},
		{"+OK", []string{"NSNEW", "162-132880-myzdb"}},
		{"-This namespace is not available", []string{"NSNEW", "162-132880-myzdb"}},
		{"-This name is not allowed", []string{"NSNEW", "a/b"}},
		{"+OK", []string{"NSSET", "162-132880-myzdb", "maxsize", "10"}},
		{"-Invalid property", []string{"NSSET", "162-132880-myzdb", "color", "1"}},
		{"+OK", []string{"SELECT", "162-132880-myzdb"}},
		{`"a"`, []string{"SET", "a", "0123456789"}},
		{"-No space left on this namespace", []string{"SET", "b", "x"}},
		{`"0123456789"`, []string{"GET", "a"}},
		{"+OK", []string{"DEL", "a"}},
		{"-Key not found", []string{"DEL", "a"}},
		{"-Cannot remove namespace you're currently using.", []string{"NSDEL", "162-132880-myzdb"}},
		{"+OK", []string{"SELECT", "default"}},
		{"+OK", []string{"NSDEL", "162-132880-myzdb"}},
		{"-Namespace not found", []string{"SELECT", "162-132880-myzdb"}},
		{"-Invalid key format", []string{"SCAN", "\x01\x00\x00\x00\xff\x00\x00\x00"}},
		{"-Invalid key format", []string{"SCAN", "abc"}},
		{"+OK", []string{"NSNEW", "s"}},
		{"+OK", []string{"NSSET", "s", "mode", "seq"}},
		{"+OK", []string{"SELECT", "s"}},
		{"-No more data", []string{"SCAN"}},
		{"-No more data", []string{"RSCAN"}},
		{`"\x00\x00\x00\x00"`, []string{"SET", "", "first"}},
		{`"\x01\x00\x00\x00"`, []string{"SET", "", "second"}},
		{`"\x01\x00\x00\x00"`, []string{"SET", "\x01\x00\x00\x00", "again"}},
		{"-Invalid key, only update authorized", []string{"SET", "\x07\x00\x00\x00", "x"}},
		{`"again"`, []string{"GET", "\x01\x00\x00\x00"}},
		{"-Cannot change mode of a namespace holding data", []string{"NSSET", "s", "mode", "user"}},
		{"+OK", []string{"NSSET", "s", "lock", "1"}},
		{"-Namespace is temporarily locked", []string{"SET", "", "x"}},
		{`"first"`, []string{"GET", "\x00\x00\x00\x00"}},
		{"+OK", []string{"NSSET", "s", "freeze", "1"}},
		{"-Namespace is temporarily frozen", []string{"GET", "\x00\x00\x00\x00"}},
		{"+OK", []string{"NSSET", "s", "freeze", "0"}},
		{"+OK", []string{"NSSET", "s", "lock", "0"}},
		{"[:1]", []string{"INDEX", "DIRTY"}},
		{"+OK", []string{"NSJUMP"}},
		{"[:1 :2]", []string{"INDEX", "DIRTY"}},
		{"+OK", []string{"INDEX", "DIRTY", "RESET"}},
		{"[]", []string{"INDEX", "DIRTY"}},
	}
	for _, st := range steps {
		c.expect(st.want, st.args...)
	}
	r := c.do("SCAN")
	if r.Kind != resp.KindArray || len(r.Elems) != 2 || len(r.Elems[1].Elems) != 2 {
		t.Fatalf("SCAN: got %s", r)
	}
	r = c.do("HISTORY", "\x01\x00\x00\x00")
	if len(r.Elems) != 3 || string(r.Elems[2].Str) != "again" {
		t.Fatalf("HISTORY: got %s", r)
	}
	if r = c.do("HISTORY", "\x01\x00\x00\x00", string(r.Elems[0].Str)); string(r.Elems[2].Str) != "second" {
		t.Fatalf("HISTORY back: got %s", r)
	}
}

func TestServerKeyCursor(t *testing.T) {
	s := openStore(t, t.TempDir(), func(c *Config) { c.Now = fixedClock; c.MaxDataFileSize = 4096 })
	defer s.Close()
	addr, _ := startServer(t, ServerConfig{}, s)
	c := dial(t, addr)
	for i := 0; i < 100; i++ {
		c.do("SET", fmt.Sprint("k", i), strings.Repeat("v", 100))
	}
	c.expect(`"k50"`, "SET", "k50", "new") // k50 moves to the end
	c.expect(":1700000000", "KEYTIME", "k50")
	cur := c.do("KEYCUR", "k10")
	var keys []string
	next := string(cur.Str)
	for {
		r := c.do("SCAN", next)
		if r.Kind == resp.KindError {
			if r.String() != "-No more data" {
				t.Fatalf("SCAN: got %s", r)
			}
			break
		}
		for _, e := range r.Elems[1].Elems {
			keys = append(keys, string(e.Elems[0].Str))
		}
		next = string(r.Elems[0].Str)
	}
	if len(keys) != 89 || keys[0] != "k11" || keys[len(keys)-1] != "k50" {
		t.Fatalf("SCAN from KEYCUR k10: got %d keys %v", len(keys), keys)
	}
}

func TestServerPasswords(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	if err := s.NamespaceCreate("private", NamespaceOptions{Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	if err := s.NamespaceCreate("shared", NamespaceOptions{Password: "secret", Public: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"private", "shared"} {
		mustNS(t, s, n).set([]byte("k"), []byte("hidden"), 0)
	}
	addr, _ := startServer(t, ServerConfig{Admin: "adm", Protect: true}, s)
	c := dial(t, addr)
	c.expect("-Namespace is in read-only mode", "SET", "k", "v")
	c.expect("-Namespace protected and private", "SELECT", "private")
	c.expect("-Access denied", "SELECT", "private", "wrong")
	c.expect("-Access denied", "SELECT", "private", "SECURE", secureHash("x", "secret"))
	c.expect("(nil)", "GET", "k") // still on default
	c.expect("+OK", "SELECT", "shared")
	c.expect(`"hidden"`, "GET", "k")
	c.expect("-Namespace is in read-only mode", "SET", "k", "v")
	c.expect("-Namespace is in read-only mode", "DEL", "k")
	// SECURE challenge
	ch := c.do("AUTH", "SECURE", "CHALLENGE")
	c.expect("+OK", "SELECT", "private", "SECURE", secureHash(string(ch.Str), "secret"))
	c.expect(`"hidden"`, "GET", "k")
	c.expect(`"k"`, "SET", "k", "mine")
	c.expect("+OK", "SELECT", "default", "adm")
	c.expect(`"k"`, "SET", "k", "v")
	d := dial(t, addr)
	ch = d.do("AUTH", "SECURE", "CHALLENGE")
	d.expect("+OK", "AUTH", "SECURE", secureHash(string(ch.Str), "adm"))
	d.expect(`"k2"`, "SET", "k2", "v")
	d.expect("+OK", "SELECT", "shared", "secret")
	d.expect("-Flushing public namespace denied", "FLUSH")
	d.expect("+OK", "SELECT", "private", "secret")
	d.expect("+OK", "FLUSH")
	d.expect("(nil)", "GET", "k")
	d.expect(":0", "DBSIZE")
}

func TestServerBadInput(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	addr, srv := startServer(t, ServerConfig{WriteTimeout: 300 * time.Millisecond}, s)
	_ = srv
	good := dial(t, addr)
	good.expect(`"k"`, "SET", "k", strings.Repeat("v", 64<<10))
	tests := []struct {
		name string
		raw  string
		want string
	}{
		// Where 0-db has a message for the fault, it is 0-db's word for
		// word (zdbd/redis.c); the connection closes after it, as there.
		{"empty array", "*0\r\n", "-Missing arguments"},
		{"bad length", "*1\r\n$abc\r\n", "-Invalid bulk length"},
		{"huge bulk", "*2\r\n$3\r\nGET\r\n$99999999999\r\n", "-Payload too big"},
		{"too many args", "*5000\r\n", "-Too many arguments"},
		{"binary junk", "*1\r\n\x00\xff\r\n", "-Malformed query string"},
		{"nested array", "*1\r\n*1\r\n$1\r\nX\r\n", "-Malformed query string"},
		{"request too big", "*3\r\n$4\r\nMGET\r\n$5000000\r\n" + strings.Repeat("k", 5000000) + "\r\n$5000000\r\n",
			"-Request too big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := dial(t, addr)
			b.c.Write([]byte(tt.raw))
			r, err := b.read()
			if err != nil || r.String() != tt.want {
				t.Fatalf("got %s %v, want %s", r, err, tt.want)
			}
			if _, err := b.read(); err == nil {
				t.Fatalf("connection still open after a protocol error")
			}
			good.expect("+PONG", "PING")
		})
	}
	t.Run("client never reads", func(t *testing.T) {
		lazy, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer lazy.Close()
		var req []byte
		for i := 0; i < 1000; i++ {
			req = resp.AppendRequest(req, []byte("GET"), []byte("k"))
		}
		go func() {
			for i := 0; i < 20; i++ {
				if _, err := lazy.Write(req); err != nil {
					return
				}
			}
		}()
		testutil.Eventually(t, 10*time.Second, "replies the lazy client leaves unread", func() (bool, error) {
			n, err := unread(lazy)
			return n > 0, err
		})
		good.expect("+PONG", "PING") // others are served meanwhile
		testutil.Eventually(t, 10*time.Second, "the lazy client to be disconnected", func() (bool, error) {
			srv.mu.RLock()
			n := len(srv.conns)
			srv.mu.RUnlock()
			return n == 1, fmt.Errorf("lazy client not disconnected (%d connections)", n)
		})
	})
}

// unread returns how many bytes c has received and not read (FIONREAD).
func unread(c net.Conn) (int, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0, err
	}
	return n, ierr
}

func TestServerPipeliningAndWait(t *testing.T) {
	s := openStore(t, t.TempDir(), func(c *Config) { c.Sync = SyncAlways })
	defer s.Close()
	addr, _ := startServer(t, ServerConfig{}, s)
	c := dial(t, addr)
	var req []byte
	const n = 2000
	for i := 0; i < n; i++ {
		req = resp.AppendRequest(req, []byte("SET"), []byte(fmt.Sprint("key", i)), []byte(fmt.Sprint("value", i)))
		req = resp.AppendRequest(req, []byte("GET"), []byte(fmt.Sprint("key", i)))
	}
	go c.c.Write(req)
	for i := 0; i < n; i++ {
		if r, err := c.read(); err != nil || string(r.Str) != fmt.Sprint("key", i) {
			t.Fatalf("SET %d: got %s %v", i, r, err)
		}
		if r, err := c.read(); err != nil || string(r.Str) != fmt.Sprint("value", i) {
			t.Fatalf("GET %d: got %s %v", i, r, err)
		}
	}
	w := dial(t, addr)
	w.send("WAIT", "set", "30000")
	ns := mustNS(t, s, DefaultNamespace)
	testutil.Eventually(t, 10*time.Second, "the WAIT to be registered", func() (bool, error) {
		return ns.nWaiters.Load() > 0, nil
	})
	c.expect(`"x"`, "SET", "x", "y")
	if r, err := w.read(); err != nil || r.String() != "+SET" {
		t.Fatalf("WAIT: got %s %v", r, err)
	}
	w.expect("-Timeout", "WAIT", "*", "100")
	if !bytes.Equal(c.do("GET", "x").Str, []byte("y")) {
		t.Fatal("GET after WAIT")
	}
}

func TestServerMultiStore(t *testing.T) {
	a := openStore(t, t.TempDir(), nil)
	defer a.Close()
	b := openStore(t, t.TempDir(), nil)
	defer b.Close()
	if err := b.NamespaceCreate("onb", NamespaceOptions{Public: true}); err != nil {
		t.Fatal(err)
	}
	addr, srv := startServer(t, ServerConfig{Admin: "adm"}, a)
	c := dial(t, addr)
	c.expect("-Namespace not found", "SELECT", "onb")
	srv.AddStore(b)
	c.expect("+OK", "SELECT", "onb")
	c.expect(`"k"`, "SET", "k", "v")
	if info, err := b.Namespace("onb"); err != nil || info.Entries != 1 {
		t.Fatalf("got %+v %v", info, err)
	}
}
