package planetary

import (
	"fmt"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// The library's link events (its logger calls) make the peers' state: a
// configured peer comes up with the peer's overlay address and goes down
// with the error; an inbound peer is listed while up; other log lines and a link
// to an unconfigured endpoint change nothing.
func TestPeerEvents(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		events [][]any // format, args...
		want   string
	}{
		{"configured peer up", [][]any{{connectedFormat, "outbound", "200::1@10.99.0.1:9651", "10.99.0.2:4000"}},
			"[{tcp://10.99.0.1:9651 true false 200::1 " + at.String() + " } {tcp://localhost:9652 false false  0001-01-01 00:00:00 +0000 UTC }]"},
		{"host name peer up then down with an error", [][]any{
			{connectedFormat, "outbound", "200::2@127.0.0.1:9652", "127.0.0.1:4000"},
			{disconnectedErrFormat, "outbound", "200::2@127.0.0.1:9652", "127.0.0.1:4000", "read: connection reset"}},
			"[{tcp://10.99.0.1:9651 false false  0001-01-01 00:00:00 +0000 UTC } {tcp://localhost:9652 false false  " + at.String() + " read: connection reset}]"},
		{"clean disconnect", [][]any{
			{connectedFormat, "outbound", "200::1@10.99.0.1:9651", "10.99.0.2:4000"},
			{disconnectedFormat, "outbound", "200::1@10.99.0.1:9651", "10.99.0.2:4000"}},
			"[{tcp://10.99.0.1:9651 false false  " + at.String() + " } {tcp://localhost:9652 false false  0001-01-01 00:00:00 +0000 UTC }]"},
		{"inbound peer", [][]any{{connectedFormat, "inbound", "200::3@10.99.0.7:5555", "10.99.0.2:9651"}},
			"[{tcp://10.99.0.1:9651 false false  0001-01-01 00:00:00 +0000 UTC } {tcp://localhost:9652 false false  0001-01-01 00:00:00 +0000 UTC } {inbound://10.99.0.7:5555 true true 200::3 " + at.String() + " }]"},
		{"inbound peer gone", [][]any{
			{connectedFormat, "inbound", "200::3@10.99.0.7:5555", "10.99.0.2:9651"},
			{disconnectedErrFormat, "inbound", "200::3@10.99.0.7:5555", "10.99.0.2:9651", "EOF"},
			{disconnectedFormat, "inbound", "200::4@10.99.0.8:5555", "10.99.0.2:9651"}},
			"[{tcp://10.99.0.1:9651 false false  0001-01-01 00:00:00 +0000 UTC } {tcp://localhost:9652 false false  0001-01-01 00:00:00 +0000 UTC }]"},
		{"unconfigured outbound and other lines", [][]any{
			{connectedFormat, "outbound", "200::9@10.99.0.9:9651", "x"},
			{"TCP listener started on %s", "[::]:9651"},
			{connectedFormat, "outbound", "no-at-sign", "x"}},
			"[{tcp://10.99.0.1:9651 false false  0001-01-01 00:00:00 +0000 UTC } {tcp://localhost:9652 false false  0001-01-01 00:00:00 +0000 UTC }]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeers([]string{"tcp://10.99.0.1:9651", "tcp://localhost:9652"})
			p.now = func() time.Time { return at }
			for _, e := range tt.events {
				p.event(e[0].(string), e[1:])
			}
			if got := fmt.Sprint(p.List()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Against the library itself, polled without pause from the test's
// goroutine while the links come up and go (the library's GetPeers
// races there: go test -race): the node's configured peer comes up with
// the public peer's address, the public peer lists the node as inbound,
// and when the public peer stops, the node's peer goes down.
func TestPeersUpAndDownWithoutRacing(t *testing.T) {
	port := testutil.FreePort(t)
	uri := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	public, err := Start(Config{DataDir: t.TempDir(), Listen: []string{uri}}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer public.Close()
	node := start(t, Config{DataDir: t.TempDir(), Peers: []string{uri}})
	if err := testutil.PollEvery(10*time.Second, time.Millisecond, func() (bool, error) {
		n, p := node.Peers(), public.Peers()
		return len(n) == 1 && n[0].Up && n[0].Address == public.Address().String() &&
			len(p) == 1 && p[0].Up && p[0].Inbound && p[0].Address == node.Address().String(), nil
	}); err != nil {
		t.Fatalf("got node peers %+v, public peers %+v, want each up with the other's address", node.Peers(), public.Peers())
	}
	select {
	case <-node.PeersChanged():
	default:
		t.Error("no change signalled")
	}
	public.Close()
	if err := testutil.PollEvery(10*time.Second, time.Millisecond, func() (bool, error) {
		n := node.Peers()
		return len(n) == 1 && !n[0].Up && n[0].URI == uri, nil
	}); err != nil {
		t.Fatalf("got node peers %+v after the public peer stopped, want it down", node.Peers())
	}
}
