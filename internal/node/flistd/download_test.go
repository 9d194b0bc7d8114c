package flistd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

func TestFetch(t *testing.T) {
	ctx := context.Background()
	h := newHub(t)
	url := h.build(t, "app.fl", rootfs)
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent"})
	hash, err := m.fetch(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flist.Open(ctx, m.flPath(hash)); err != nil {
		t.Errorf("stored flist: %v", err)
	}
	if again, err := m.fetch(ctx, url); err != nil || again != hash {
		t.Errorf("second fetch = %s, %v; want %s", again, err, hash)
	}
	if got := h.count("app.fl"); got != 1 {
		t.Errorf("hub hit %d times, want 1", got)
	}
	// A missing file is fetched again.
	if err := os.Remove(m.flPath(hash)); err != nil {
		t.Fatal(err)
	}
	if again, err := m.fetch(ctx, url); err != nil || again != hash {
		t.Errorf("fetch after removal = %s, %v; want %s", again, err, hash)
	}
	if got := h.count("app.fl"); got != 2 {
		t.Errorf("hub hit %d times, want 2", got)
	}
	// The same content under another URL has the same hash.
	copyURL := h.put(t, "copy.fl", h.file("app.fl"))
	if other, err := m.fetch(ctx, copyURL); err != nil || other != hash {
		t.Errorf("fetch of a copy = %s, %v; want %s", other, err, hash)
	}
	// No temporary file is left.
	ents, _ := os.ReadDir(filepath.Join(m.cfg.Root, dirFlists))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestFetchErrors(t *testing.T) {
	h := newHub(t)
	good := h.file(strings.TrimPrefix(h.build(t, "good.fl", rootfs), h.URL+"/repo/"))
	garbage := h.put(t, "garbage.fl", []byte("this is not sqlite"))
	truncated := h.put(t, "truncated.fl", good[:len(good)/2])
	big := h.put(t, "big.fl", make([]byte, 1<<20+1))
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/repo/app.fl"
	ln.Close()
	tests := []struct {
		name, url string
		want      string // in the error
		is        error
	}{
		{"404", h.URL + "/repo/missing.fl", "status 404", nil},
		{"garbage", garbage, "invalid flist", flist.ErrInvalid},
		{"truncated", truncated, "", nil},
		{"too large", big, "too large", ErrTooLarge},
		{"unreachable", dead, "connection refused", nil},
		{"relative path", "app.fl", "want an http(s) URL", nil},
		{"ftp", "ftp://host/app.fl", "want an http(s) URL", nil},
		{"absolute path", "/nonexistent/app.fl", "want an http(s) URL", nil},
		{"file url", "file:///etc/passwd", "want an http(s) URL", nil},
	}
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", MaxFlistSize: 1 << 20, DownloadTimeout: 5 * time.Second})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.fetch(context.Background(), tt.url)
			if err == nil {
				t.Fatal("fetch succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.url) {
				t.Errorf("error %q does not name %s", err, tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q in it", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want errors.Is %v", err, tt.is)
			}
		})
	}
	// Nothing bad was kept.
	for _, d := range []string{dirFlists, dirURLs} {
		ents, _ := os.ReadDir(filepath.Join(m.cfg.Root, d))
		if len(ents) != 0 {
			t.Errorf("%s holds %d entries after failed downloads", d, len(ents))
		}
	}
	// MountRO reports the same errors without mounting anything.
	if _, _, err := m.MountRO(context.Background(), garbage); !errors.Is(err, flist.ErrInvalid) {
		t.Errorf("MountRO of garbage: %v", err)
	}
}

func TestFetchTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Accepts and never answers.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	m := newModule(t, filepath.Join(t.TempDir(), "flist"), Config{Binary: "/nonexistent", DownloadTimeout: 200 * time.Millisecond})
	start := time.Now()
	url := "http://" + ln.Addr().String() + "/repo/slow.fl"
	_, err = m.fetch(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Errorf("fetch from a silent hub: %v, want an error naming the URL", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("fetch took %s, want about the 200ms timeout", el)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Root: "rel"}, {Root: "/x", CacheDir: "rel"}, {Root: "/x", CacheSize: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (Config{Root: "/x"}).Validate(); err != nil {
		t.Errorf("Validate of a minimal config: %v", err)
	}
}
