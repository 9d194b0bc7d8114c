package flist

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
)

// HTTPStore is a hub's block store.
type HTTPStore struct {
	c *HubClient
}

var _ Store = (*HTTPStore)(nil)

// NewHTTPStore opens the block store of the hub at base.
func NewHTTPStore(base string, signer Signer) (*HTTPStore, error) {
	return &HTTPStore{c: NewHubClient(base, signer)}, nil
}

// Get downloads a block.
func (s *HTTPStore) Get(ctx context.Context, id [HashSize]byte) ([]byte, error) {
	return s.c.Do(ctx, http.MethodGet, "/api/v1/blocks/"+hex.EncodeToString(id[:]), nil)
}

// Has asks whether the hub holds a block.
func (s *HTTPStore) Has(ctx context.Context, id [HashSize]byte) (bool, error) {
	_, err := s.c.Do(ctx, http.MethodHead, "/api/v1/blocks/"+hex.EncodeToString(id[:]), nil)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

// Set uploads a block (signed).
func (s *HTTPStore) Set(ctx context.Context, id [HashSize]byte, data []byte) error {
	if s.c.signer == nil {
		return fmt.Errorf("%s: uploading needs a twin key", s.URL())
	}
	_, err := s.c.Do(ctx, http.MethodPut, "/api/v1/blocks/"+hex.EncodeToString(id[:]), data)
	return err
}

// URL is the hub's base URL.
func (s *HTTPStore) URL() string { return s.c.base }

// Close does nothing.
func (s *HTTPStore) Close() error { return nil }
