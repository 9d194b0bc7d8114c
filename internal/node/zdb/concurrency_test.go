package zdb

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/zos-go/zos/internal/resp"
)

// TestConcurrentClients runs many clients at once on one namespace (SET, GET,
// DEL, SCAN, pipelined) while the admin creates and deletes other
// namespaces; every client must read back its own writes.
func TestConcurrentClients(t *testing.T) {
	s := openStore(t, t.TempDir(), func(c *Config) { c.MaxDataFileSize = 64 << 10 })
	defer s.Close()
	addr, _ := startServer(t, ServerConfig{}, s)
	const clients, rounds = 32, 40
	errs := make(chan error, clients+1)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc := dialErr(addr)
			if nc == nil {
				errs <- errors.New("dial failed")
				return
			}
			defer nc.Close()
			c := &client{t: t, c: nc}
			c.br = newReader(nc)
			for r := 0; r < rounds; r++ {
				key := fmt.Sprintf("c%d-%d", i, r%10)
				value := fmt.Sprintf("v%d-%d", i, r)
				var req []byte
				req = resp.AppendRequest(req, []byte("SET"), []byte(key), []byte(value))
				req = resp.AppendRequest(req, []byte("GET"), []byte(key))
				if r%7 == 0 {
					req = resp.AppendRequest(req, []byte("DEL"), []byte(key))
				} else {
					req = resp.AppendRequest(req, []byte("PING"))
				}
				req = resp.AppendRequest(req, []byte("SCAN"))
				if _, err := nc.Write(req); err != nil {
					errs <- err
					return
				}
				replies := make([]resp.Reply, 4)
				for j := range replies {
					var err error
					if replies[j], err = c.read(); err != nil {
						errs <- err
						return
					}
				}
				if string(replies[0].Str) != key || string(replies[1].Str) != value {
					errs <- fmt.Errorf("client %d round %d: got %s %s", i, r, replies[0], replies[1])
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 0; r < 30; r++ {
			name := fmt.Sprint("tmp", r%3)
			s.NamespaceCreate(name, NamespaceOptions{Public: true})
			if ns := s.lookup(name); ns != nil {
				ns.set([]byte("k"), []byte("v"), 0)
			}
			if err := s.NamespaceDelete(name); err != nil && !errors.Is(err, ErrNotFound) {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := s.Namespace(DefaultNamespace)
	if err != nil || info.Entries == 0 {
		t.Fatalf("got %+v %v", info, err)
	}
}
