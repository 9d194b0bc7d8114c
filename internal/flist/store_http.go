package flist

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
)

// HTTPStore is a block store over HTTP: an rfs-style web server holding
// the blocks as files, or a hub (which also takes signed uploads).
type HTTPStore struct {
	c *HubClient
}

var _ Store = (*HTTPStore)(nil)

// NewHTTPStore opens the block store at base.
func NewHTTPStore(base string, signer Signer) (*HTTPStore, error) {
	return &HTTPStore{c: NewHubClient(base, signer)}, nil
}

// blockPaths are where an HTTP store may hold a block, in the order they
// are asked: BASE/ab/abcd... then BASE/abcd... (what rfs reads, so a hub
// and a plain web server over an rfs dir store both work), then
// BASE/api/v1/blocks/abcd... (hubs of earlier releases). Only a 404 moves
// on to the next; any other answer ends the search.
func blockPaths(id [HashSize]byte) [3]string {
	h := hex.EncodeToString(id[:])
	return [3]string{"/" + h[:2] + "/" + h, "/" + h, "/api/v1/blocks/" + h}
}

// Get downloads a block.
func (s *HTTPStore) Get(ctx context.Context, id [HashSize]byte) ([]byte, error) {
	for _, p := range blockPaths(id) {
		b, err := s.c.Do(ctx, http.MethodGet, p, nil)
		if err == nil {
			return b, nil
		}
		if !isNotFound(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: %x: %w", s.URL(), id, ErrNotFound)
}

// Has asks whether the store holds a block.
func (s *HTTPStore) Has(ctx context.Context, id [HashSize]byte) (bool, error) {
	for _, p := range blockPaths(id) {
		_, err := s.c.Do(ctx, http.MethodHead, p, nil)
		if err == nil {
			return true, nil
		}
		if !isNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

// Set uploads a block to a hub (signed).
func (s *HTTPStore) Set(ctx context.Context, id [HashSize]byte, data []byte) error {
	if s.c.signer == nil {
		return fmt.Errorf("%s: uploading needs a twin key", s.URL())
	}
	_, err := s.c.Do(ctx, http.MethodPut, "/api/v1/blocks/"+hex.EncodeToString(id[:]), data)
	return err
}

// URL is the store's base URL.
func (s *HTTPStore) URL() string { return s.c.base }

// Close does nothing.
func (s *HTTPStore) Close() error { return nil }
