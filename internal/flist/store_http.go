package flist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Hub request signing: the twin signs METHOD\nPATH\nUNIX-TIME\nSHA256(BODY)
// with its ed25519 key; the hub checks it against the registry.
const (
	HeaderTwin      = "X-Zos-Twin"
	HeaderTime      = "X-Zos-Time"
	HeaderSignature = "X-Zos-Signature"
)

// SignedMessage is what a hub upload's signature covers.
func SignedMessage(method, path string, unix int64, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(method + "\n" + path + "\n" + strconv.FormatInt(unix, 10) + "\n" + hex.EncodeToString(sum[:]))
}

// HubClient talks to a flist hub: blocks under /api/v1/blocks, flists
// under /api/flist.
type HubClient struct {
	base   string
	signer Signer
	hc     *http.Client
}

// NewHubClient makes a client of the hub at base (http(s)://host:port);
// signer may be nil for reading.
func NewHubClient(base string, signer Signer) *HubClient {
	return &HubClient{base: strings.TrimRight(base, "/"), signer: signer, hc: &http.Client{Timeout: 60 * time.Second}}
}

// Do sends a request (signed when the client has a signer) and returns the
// body of a 2xx answer; other statuses are errors carrying the hub's text.
// A 404 wraps ErrNotFound.
func (c *HubClient) Do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.signer != nil {
		now := time.Now().Unix()
		req.Header.Set(HeaderTwin, strconv.FormatUint(uint64(c.signer.TwinID()), 10))
		req.Header.Set(HeaderTime, strconv.FormatInt(now, 10))
		req.Header.Set(HeaderSignature, hex.EncodeToString(c.signer.Sign(SignedMessage(method, path, now, body))))
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("hub %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, 512<<20))
	if err != nil {
		return nil, fmt.Errorf("hub %s %s: reading answer: %w", method, path, err)
	}
	if res.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("hub %s %s: %w", method, path, ErrNotFound)
	}
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("hub %s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

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
