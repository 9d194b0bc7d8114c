package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Twins read a node's events through the registry (OpEventsFetch), never
// from JetStream: the events stream lives in the grid's own NATS account,
// which twins cannot reach. A fetch returns the events after a sequence;
// with a wait it is held until one arrives (long poll), which is how
// WatchNode follows a node live.
const (
	OpEventsFetch = "events.fetch"

	// MaxEventsPerFetch bounds the events of one answer.
	MaxEventsPerFetch = 256
	// MaxEventsWait bounds how long a fetch may be held.
	MaxEventsWait = 10 * time.Second
	// maxWaiters bounds the fetches held at once; beyond it, fetches are
	// answered at once (the caller polls again).
	maxWaiters = 4096
)

// eventsFetchReq asks for the events of a node after a sequence.
type eventsFetchReq struct {
	NodeID uint32 `json:"node_id"`
	After  uint64 `json:"after"`
	Max    int    `json:"max,omitempty"`
	WaitMS int64  `json:"wait_ms,omitempty"`
}

// EventsPage is the answer of a fetch: the events after the asked
// sequence, in order, and the stream's bounds (FirstSeq > After+1 means
// events were lost to the stream's age limit).
type EventsPage struct {
	Events   []Event `json:"events"`
	FirstSeq uint64  `json:"first_seq"`
	LastSeq  uint64  `json:"last_seq"`
}

// notifier wakes fetches held for a node when an event of the node is
// published, by any registry service of the grid: it follows the events'
// subjects as a plain subscriber in the grid's account.
type notifier struct {
	mu      sync.Mutex // guards waiters and n
	waiters map[uint32]map[chan struct{}]struct{}
	n       int
}

func newNotifier() *notifier { return &notifier{waiters: map[uint32]map[chan struct{}]struct{}{}} }

// wait registers a waiter for node; ok is false when too many wait.
func (w *notifier) wait(node uint32) (ch chan struct{}, done func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n >= maxWaiters {
		return nil, nil, false
	}
	ch = make(chan struct{})
	if w.waiters[node] == nil {
		w.waiters[node] = map[chan struct{}]struct{}{}
	}
	w.waiters[node][ch] = struct{}{}
	w.n++
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.waiters[node][ch]; ok {
			delete(w.waiters[node], ch)
			if len(w.waiters[node]) == 0 {
				delete(w.waiters, node)
			}
			w.n--
		}
	}, true
}

// wake releases every waiter of node.
func (w *notifier) wake(node uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.waiters[node] {
		close(ch)
		w.n--
	}
	delete(w.waiters, node)
}

// follow subscribes to the events' subjects until ctx ends.
func (w *notifier) follow(ctx context.Context, nc *nats.Conn) error {
	prefix := SubjectPrefix + "events.node."
	sub, err := nc.Subscribe(prefix+"*", func(m *nats.Msg) {
		if id, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, prefix), 10, 32); err == nil {
			w.wake(uint32(id))
		}
	})
	if err != nil {
		return fmt.Errorf("following events: %w", err)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return nil
}

// eventsFetch serves OpEventsFetch.
func (s *Service) eventsFetch(ctx context.Context, _ *signedRequest, req eventsFetchReq) (any, error) {
	if req.NodeID == 0 {
		return nil, fmt.Errorf("%w: node_id is required", ErrInvalid)
	}
	if req.Max <= 0 || req.Max > MaxEventsPerFetch {
		req.Max = MaxEventsPerFetch
	}
	wait := time.Duration(req.WaitMS) * time.Millisecond
	if wait < 0 {
		wait = 0
	}
	if wait > MaxEventsWait {
		wait = MaxEventsWait
	}
	// Register before reading, so that an event published in between
	// still wakes this fetch.
	var wake chan struct{}
	if wait > 0 {
		ch, done, ok := s.notify.wait(req.NodeID)
		if ok {
			defer done()
			wake = ch
		}
	}
	p, err := s.readEvents(ctx, req)
	if err != nil || len(p.Events) > 0 || wake == nil {
		return p, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
		return p, nil
	case <-ctx.Done():
		return p, nil
	}
	return s.readEvents(ctx, req)
}

// readEvents reads up to req.Max events of the node after req.After.
func (s *Service) readEvents(ctx context.Context, req eventsFetchReq) (EventsPage, error) {
	info, err := s.st.events.Info(ctx)
	if err != nil {
		return EventsPage{}, fmt.Errorf("reading events stream: %w", err)
	}
	p := EventsPage{Events: []Event{}, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
	subject := fmt.Sprintf(eventSubjectFmt, req.NodeID)
	seq := max(req.After+1, info.State.FirstSeq)
	for len(p.Events) < req.Max && seq <= info.State.LastSeq {
		m, err := s.st.events.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return EventsPage{}, fmt.Errorf("reading events of node %d: %w", req.NodeID, err)
		}
		var ev Event
		if err := json.Unmarshal(m.Data, &ev); err == nil {
			ev.Seq = m.Sequence
			p.Events = append(p.Events, ev)
		}
		seq = m.Sequence + 1
	}
	return p, nil
}

// FetchEvents returns the events of a node after a sequence, holding the
// request up to wait (at most MaxEventsWait) when there are none yet.
func (c *Client) FetchEvents(ctx context.Context, node uint32, after uint64, wait time.Duration) (EventsPage, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+c.timeout)
	defer cancel()
	var p EventsPage
	err := c.readWithin(ctx, OpEventsFetch, eventsFetchReq{NodeID: node, After: after, WaitMS: wait.Milliseconds()}, &p, wait+c.timeout)
	return p, err
}

// watchWait is how long each fetch of WatchNode is held.
const watchWait = MaxEventsWait

// WatchNode streams the events of a node with a sequence after afterSeq
// (0: all kept events), then live ones. If some of those events aged out
// of the stream, an EventResync comes first. The channel closes when ctx
// ends or a fetch fails; a node keeps the Seq of the last event it
// handled and watches again from there.
func (c *Client) WatchNode(ctx context.Context, node uint32, afterSeq uint64) (<-chan Event, error) {
	// The first fetch answers at once, so that a grid that cannot serve
	// is an error here rather than a closed channel.
	first, err := c.FetchEvents(ctx, node, afterSeq, 0)
	if err != nil {
		return nil, fmt.Errorf("watching node %d: %w", node, err)
	}
	out := make(chan Event, 16)
	// This goroutine belongs to the caller's ctx: it ends, and closes
	// out, when ctx ends or a fetch fails.
	go func() {
		defer close(out)
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		last, p := afterSeq, first
		for {
			// Events after last that the stream no longer holds are
			// lost to this watch: say so first.
			if last > 0 && last+1 < p.FirstSeq && (len(p.Events) == 0 || p.Events[0].Seq > last+1) {
				if !send(Event{Kind: EventResync, NodeID: node, Seq: last, Time: c.now().UTC()}) {
					return
				}
			}
			for _, ev := range p.Events {
				if !send(ev) {
					return
				}
				last = ev.Seq
			}
			if len(p.Events) == 0 && p.LastSeq > last {
				// Nothing of ours up to the stream's end: skip there, so
				// that a later loss is judged from here.
				last = p.LastSeq
			}
			var err error
			if p, err = c.FetchEvents(ctx, node, last, watchWait); err != nil {
				return
			}
		}
	}()
	return out, nil
}
