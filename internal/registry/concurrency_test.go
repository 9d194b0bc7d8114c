package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
	"golang.org/x/sync/errgroup"
)

func TestConcurrentContractIDs(t *testing.T) {
	g := newGrid(t)
	_, _, _, node := g.farmWithNode(t, "farm1", 0)
	const workers, each = 20, 10
	users := make([]*user, workers)
	for i := range users {
		users[i] = g.user(t)
	}
	var mu sync.Mutex
	ids := map[uint64]bool{} // guarded by mu
	eg, ctx := errgroup.WithContext(context.Background())
	for w := range workers {
		eg.Go(func() error {
			for i := range each {
				c, err := users[w].c.CreateNodeContract(ctx, node.ID, fmt.Sprintf("%04x%04x", w, i), "", 0)
				if err != nil {
					return fmt.Errorf("worker %d contract %d: %w", w, i, err)
				}
				mu.Lock()
				if ids[c.ID] {
					mu.Unlock()
					return fmt.Errorf("contract id %d given twice", c.ID)
				}
				ids[c.ID] = true
				mu.Unlock()
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != workers*each {
		t.Fatalf("got %d distinct ids, want %d", len(ids), workers*each)
	}
	all, err := users[0].c.Contracts(context.Background(), ContractFilter{NodeID: node.ID})
	if err != nil || len(all) != workers*each {
		t.Fatalf("Contracts: got %d, %v; want %d", len(all), err, workers*each)
	}
}

func TestPublicIPReservation(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	const ips = 10
	_, farm, _, node := g.farmWithNode(t, "farm1", ips)
	users := make([]*user, 8)
	for i := range users {
		users[i] = g.user(t)
	}
	var mu sync.Mutex
	var won []Contract // guarded by mu
	var eg errgroup.Group
	for w, u := range users {
		eg.Go(func() error {
			for i := range 3 {
				n := uint32(1 + (w+i)%2)
				c, err := u.c.CreateNodeContract(ctx, node.ID, fmt.Sprintf("%02x%02x", w, i), "", n)
				if errors.Is(err, ErrNoFreeIP) {
					continue
				}
				if err != nil {
					return err
				}
				if len(c.PublicIPs) != int(n) {
					return fmt.Errorf("contract %d asked %d ips, got %d", c.ID, n, len(c.PublicIPs))
				}
				mu.Lock()
				won = append(won, c)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	holder := map[string]uint64{}
	used := 0
	for _, c := range won {
		for _, ip := range c.PublicIPs {
			if h, ok := holder[ip.IP]; ok {
				t.Fatalf("ip %s given to contracts %d and %d", ip.IP, h, c.ID)
			}
			holder[ip.IP] = c.ID
			used++
		}
	}
	if used > ips || used < ips-1 {
		t.Fatalf("%d ips handed out of %d (a request for 1 must succeed while any is free)", used, ips)
	}
	f, err := users[0].c.Farm(ctx, farm.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range f.PublicIPs {
		if ip.ContractID != holder[ip.IP] {
			t.Fatalf("farm says %s is held by %d, contracts say %d", ip.IP, ip.ContractID, holder[ip.IP])
		}
	}
	// Cancel frees the IPs for another contract.
	var first Contract
	for _, c := range won {
		first = c
		break
	}
	owner := users[0]
	for _, u := range users {
		if u.twin.ID == first.TwinID {
			owner = u
		}
	}
	_, err = owner.c.CreateNodeContract(ctx, node.ID, "ff", "", uint32(ips))
	wantErr(t, "more ips than free", err, ErrNoFreeIP)
	if err := owner.c.CancelContract(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	c, err := owner.c.CreateNodeContract(ctx, node.ID, "ff", "", uint32(len(first.PublicIPs)))
	if err != nil {
		t.Fatalf("contract after cancel: %v", err)
	}
	if len(c.PublicIPs) != len(first.PublicIPs) {
		t.Fatalf("got %d ips, want %d", len(c.PublicIPs), len(first.PublicIPs))
	}
}

func TestEventsReplay(t *testing.T) {
	testutil.NoLeaks(t)
	g := newGrid(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	farmer, _, _, node := g.farmWithNode(t, "farm1", 0)
	_, _, _, other := g.farmWithNode(t, "farm2", 0)
	u := g.user(t)
	c1, err := u.c.CreateNodeContract(ctx, node.ID, "01", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.c.CreateNodeContract(ctx, other.ID, "02", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := u.c.UpdateNodeContract(ctx, c1.ID, "03", ""); err != nil {
		t.Fatal(err)
	}
	if err := farmer.c.SetPublicConfig(ctx, node.ID, &PublicConfig{Domain: "example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := u.c.CancelContract(ctx, c1.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{EventContractCreated, EventContractUpdated, EventPublicConfigChanged, EventContractCanceled}

	recv := func(ch <-chan Event, n int) []Event {
		t.Helper()
		var out []Event
		for len(out) < n {
			select {
			case ev, ok := <-ch:
				if !ok {
					t.Fatalf("channel closed after %d events", len(out))
				}
				if ev.NodeID != node.ID {
					t.Fatalf("event of node %d on node %d's watch", ev.NodeID, node.ID)
				}
				out = append(out, ev)
			case <-time.After(10 * time.Second):
				t.Fatalf("got %d events, want %d", len(out), n)
			}
		}
		return out
	}
	wctx, wcancel := context.WithCancel(ctx)
	ch, err := u.c.WatchNode(wctx, node.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	evs := recv(ch, len(want))
	for i, ev := range evs {
		if ev.Kind != want[i] {
			t.Fatalf("event %d: got %s, want %s", i, ev.Kind, want[i])
		}
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			t.Fatalf("sequence not increasing: %d then %d", evs[i-1].Seq, ev.Seq)
		}
	}
	if evs[0].Contract == nil || evs[0].Contract.ID != c1.ID {
		t.Fatalf("created event carries %+v", evs[0].Contract)
	}
	// Live.
	c3, err := u.c.CreateNodeContract(ctx, node.ID, "04", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	live := recv(ch, 1)[0]
	if live.Kind != EventContractCreated || live.Contract.ID != c3.ID {
		t.Fatalf("live event: got %+v", live)
	}
	wcancel()
	for range ch { // closes when the context ends
	}

	// A node that was down resumes after the second event it saw.
	ch, err = u.c.WatchNode(ctx, node.ID, evs[1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	rest := recv(ch, 3)
	if rest[0].Seq != evs[2].Seq || rest[1].Kind != EventContractCanceled || rest[2].Seq != live.Seq {
		t.Fatalf("replay after %d: got %+v", evs[1].Seq, rest)
	}

	// Events that aged out: the watch starts with a resync.
	if err := g.svc.st.events.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	ch, err = u.c.WatchNode(rctx, node.ID, evs[1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if ev := recv(ch, 1)[0]; ev.Kind != EventResync {
		t.Fatalf("after purge: got %+v, want a resync", ev)
	}
}
