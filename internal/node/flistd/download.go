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
	"path/filepath"
	"strings"

	"github.com/zos-go/zos/internal/flist"
)

// fetch makes sure the flist at src is in Root/fl and returns its content
// hash. An http(s) URL downloaded before is not fetched again while its file
// is there; an absolute path is read each time (it is local and may change).
func (m *Module) fetch(ctx context.Context, src string) (string, error) {
	var (
		data []byte
		err  error
	)
	switch {
	case filepath.IsAbs(src):
		data, err = m.readLocal(src)
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		if hash, ok := m.known(src); ok {
			return hash, nil
		}
		data, err = m.download(ctx, src)
	default:
		return "", fmt.Errorf("flist %q: want an http(s) URL or an absolute path", src)
	}
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if err := m.store(ctx, src, hash, data); err != nil {
		return "", err
	}
	if !filepath.IsAbs(src) {
		if err := writeAtomic(m.urlIndex(src), []byte(hash+"\n")); err != nil {
			return "", fmt.Errorf("flist %s: recording download: %w", src, err)
		}
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

func (m *Module) readLocal(src string) ([]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("flist %s: %w", src, err)
	}
	defer f.Close()
	return m.readBounded(src, f)
}

func (m *Module) download(ctx context.Context, src string) ([]byte, error) {
	u, err := url.Parse(src)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("flist %q: not a valid URL", src)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("flist %s: %w", src, err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading flist %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("downloading flist %s: %s: %s", src, resp.Status, strings.TrimSpace(string(body)))
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
		return nil, fmt.Errorf("reading flist %s: %w", src, err)
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
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("flist %s: writing: %w", src, err)
	}
	if _, err := flist.Open(ctx, tmp.Name()); err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("flist %s: %w", src, err)
	}
	return nil
}

// writeAtomic writes a small file through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readSmall reads a small state file; a missing file is ("", nil).
func readSmall(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}
