package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// pageBytes bounds the encoded size of one list page (NATS messages are at
// most 1 MiB by default).
const pageBytes = 512 << 10

// page cuts items into a page of at most pageBytes.
func page[T any](items []T) (listPage[T], error) {
	out := listPage[T]{Items: []T{}}
	size := 0
	for i := range items {
		b, err := json.Marshal(&items[i])
		if err != nil {
			return out, fmt.Errorf("encoding list: %w", err)
		}
		if size+len(b) > pageBytes && len(out.Items) > 0 {
			out.More = true
			return out, nil
		}
		size += len(b) + 1
		out.Items = append(out.Items, items[i])
	}
	return out, nil
}

// pageOfList answers a list request on kv: the records after the id after
// that keep accepts (all when nil), in id order, one page of them.
func pageOfList[T any](ctx context.Context, kv jetstream.KeyValue, after uint64, id func(*T) uint64, keep func(*T) bool) (any, error) {
	items, err := list(ctx, kv, after, id, keep)
	if err != nil {
		return nil, err
	}
	return page(items)
}

func (s *Service) twinGet(ctx context.Context, _ *signedRequest, req getReq) (any, error) {
	if req.Key != "" {
		t, err := s.twinByKey(ctx, req.Key)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: no twin with key %s", ErrNotFound, req.Key)
		}
		return t, err
	}
	return s.twinByID(ctx, req.ID, false)
}

func (s *Service) twinList(ctx context.Context, _ *signedRequest, req listReq) (any, error) {
	return pageOfList(ctx, s.st.twins, req.After, func(t *Twin) uint64 { return uint64(t.ID) }, nil)
}

func (s *Service) farmGet(ctx context.Context, _ *signedRequest, req getReq) (any, error) {
	return s.farm(ctx, uint32(req.ID))
}

func (s *Service) farmList(ctx context.Context, _ *signedRequest, req listReq) (any, error) {
	return pageOfList(ctx, s.st.farms, req.After, func(f *Farm) uint64 { return uint64(f.ID) }, nil)
}

func (s *Service) nodeGet(ctx context.Context, _ *signedRequest, req getReq) (any, error) {
	if req.Twin != 0 {
		id, err := s.st.indexGet(ctx, fmt.Sprintf("nodetwin.%d", req.Twin))
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: no node of twin %d", ErrNotFound, req.Twin)
		}
		if err != nil {
			return nil, err
		}
		req.ID = id
	}
	return s.node(ctx, uint32(req.ID))
}

func (s *Service) nodeList(ctx context.Context, _ *signedRequest, req listReq) (any, error) {
	return pageOfList(ctx, s.st.nodes, req.After, func(n *Node) uint64 { return uint64(n.ID) }, nil)
}

func (s *Service) contractGet(ctx context.Context, _ *signedRequest, req getReq) (any, error) {
	return s.contract(ctx, req.ID)
}

func (s *Service) contractList(ctx context.Context, _ *signedRequest, req listReq) (any, error) {
	f := req.Contract
	return pageOfList(ctx, s.st.contracts, req.After, func(c *Contract) uint64 { return c.ID }, func(c *Contract) bool {
		return (f.TwinID == 0 || c.TwinID == f.TwinID) && (f.NodeID == 0 || c.NodeID == f.NodeID) &&
			(f.State == "" || c.State == f.State) && (f.Type == "" || c.Type == f.Type)
	})
}

func (s *Service) eventsInfo(ctx context.Context, _ *signedRequest, _ json.RawMessage) (any, error) {
	info, err := s.st.events.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading events stream: %w", err)
	}
	return EventsInfo{Stream: EventsStream, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}, nil
}
