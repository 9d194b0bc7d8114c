package flistd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/flist"
)

// fetch makes sure the flist at src, an http(s) URL, is in Root/fl and
// returns its content hash. A URL downloaded before is not fetched again
// while its file is there. src comes from a tenant: it is never a path of
// the node's disk, and it is fetched only from addresses the egress policy
// allows (loopback, link-local, the node's own and private addresses are
// refused unless allowed), redirects included.
func (m *Module) fetch(ctx context.Context, src string) (string, error) {
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("flist %q: want an http(s) URL", src)
	}
	if _, err := m.egress.CheckURL(src, "http", "https"); err != nil {
		return "", fmt.Errorf("flist %s: %w", src, err)
	}
	if hash, ok := m.known(src); ok {
		return hash, nil
	}
	data, err := m.download(ctx, src)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if err := m.store(ctx, src, hash, data); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(m.urlIndex(src), []byte(hash+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("flist %s: recording download: %w", src, err)
	}
	return hash, nil
}

func (m *Module) urlIndex(src string) string {
	sum := sha256.Sum256([]byte(src))
	return m.path(dirURLs, hex.EncodeToString(sum[:]))
}

// known returns the hash an earlier download of src gave, when its file is
// still there.
func (m *Module) known(src string) (string, bool) {
	b, err := os.ReadFile(m.urlIndex(src))
	if err != nil {
		return "", false
	}
	hash := strings.TrimSpace(string(b))
	if !validHash(hash) {
		return "", false
	}
	if _, err := os.Stat(m.flPath(hash)); err != nil {
		return "", false
	}
	return hash, true
}

// download gets src through the egress policy's client. Its errors name
// src and say what went wrong in our words: the status code of a refusal,
// never the remote body nor a transport error quoting the answer.
func (m *Module) download(ctx context.Context, src string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("flist %s: %w", src, err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading flist %s: %w", src, egress.TransportError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading flist %s: status %d", src, resp.StatusCode)
	}
	if resp.ContentLength > m.cfg.MaxFlistSize {
		return nil, fmt.Errorf("flist %s: %w: %d bytes, at most %d", src, ErrTooLarge, resp.ContentLength, m.cfg.MaxFlistSize)
	}
	data, err := m.readBounded(src, resp.Body)
	if err != nil {
		return nil, err
	}
	m.log.Info("flist_downloaded", "url", src, "bytes", len(data))
	return data, nil
}

// readBounded reads r up to the size bound.
func (m *Module) readBounded(src string, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, m.cfg.MaxFlistSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading flist %s: %w", src, egress.TransportError(err))
	}
	if int64(len(data)) > m.cfg.MaxFlistSize {
		return nil, fmt.Errorf("flist %s: %w: more than %d bytes", src, ErrTooLarge, m.cfg.MaxFlistSize)
	}
	return data, nil
}

// store writes data as Root/fl/<hash>.fl unless it is there, after checking
// that it is a valid flist.
func (m *Module) store(ctx context.Context, src, hash string, data []byte) error {
	dst := m.flPath(hash)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	tmp, err := atomicfile.Create(dst, 0o644)
	if err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	defer tmp.Close()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("flist %s: writing: %w", src, err)
	}
	meta, err := flist.Open(ctx, tmp.Name())
	if err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	if err := m.checkRoutes(meta); err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	if err := tmp.Commit(); err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	return nil
}

// openStores opens the block stores the flist's routes name, as the
// egress policy allows: http(s) and zdb stores at allowed addresses, never
// a dir:// store (the node's disk).
func (m *Module) openStores(meta *flist.Meta) (*flist.Router, error) {
	return flist.NewRouter(meta.Routes, flist.StoreOptions{Egress: m.egress})
}

// checkRoutes refuses a flist whose stores the node may not read.
func (m *Module) checkRoutes(meta *flist.Meta) error {
	r, err := m.openStores(meta)
	if err != nil {
		return err
	}
	return r.Close()
}

// readSmall reads a small state file; a missing file is ("", nil).
func readSmall(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}
