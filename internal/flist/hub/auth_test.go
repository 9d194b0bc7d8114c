package hub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// TestRefusedUploadIsNotRead: a large upload refused for who sends it,
// where to, or how large it says it is, is refused before its body is
// read: the hub reads (and allocates) far less than the body.
func TestRefusedUploadIsNotRead(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{}, tw)
	const size = 200 << 20
	// A request honest twin 7 made earlier, to replay.
	replayed := signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/big.fl", nil)
	if w := serve(h, replayed); w.Code != http.StatusBadRequest { // an empty flist is not valid, but it was signed
		t.Fatalf("first request: got %d %q, want 400", w.Code, w.Body.String())
	}
	sign := func(r *http.Request, twin uint32, key uint32, at time.Time) {
		if err := flist.SignRequest(r, flist.KeySigner{Twin: twin, Key: tw[key]}, [32]byte{}, at); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		path   string
		length int64 // declared; -1 streams
		sign   func(r *http.Request)
		want   int
	}{
		{"anonymous", "/api/flist/twin7/big.fl", size, func(*http.Request) {}, http.StatusUnauthorized},
		{"anonymous streamed", "/api/flist/twin7/big.fl", -1, func(*http.Request) {}, http.StatusUnauthorized},
		{"anonymous block", "/api/v1/blocks/" + strings.Repeat("ab", 32), size, func(*http.Request) {}, http.StatusUnauthorized},
		{"bad signature", "/api/flist/twin7/big.fl", size, func(r *http.Request) {
			sign(r, 7, 7, time.Now())
			r.Header.Set(flist.HeaderSignature, strings.Repeat("00", 64))
		}, http.StatusUnauthorized},
		{"forged twin", "/api/flist/twin7/big.fl", size, func(r *http.Request) { sign(r, 7, 9, time.Now()) }, http.StatusUnauthorized},
		{"unknown twin", "/api/flist/twin5/big.fl", size, func(r *http.Request) {
			r.Header.Set(flist.HeaderTwin, "5")
			r.Header.Set(flist.HeaderTime, strconv.FormatInt(time.Now().Unix(), 10))
			r.Header.Set(flist.HeaderNonce, strings.Repeat("01", flist.NonceSize))
			r.Header.Set(flist.HeaderContentSHA256, strings.Repeat("02", 32))
			r.Header.Set(flist.HeaderSignature, strings.Repeat("03", 64))
		}, http.StatusUnauthorized},
		{"stale", "/api/flist/twin7/big.fl", size, func(r *http.Request) { sign(r, 7, 7, time.Now().Add(-time.Hour)) }, http.StatusUnauthorized},
		{"no nonce", "/api/flist/twin7/big.fl", size, func(r *http.Request) {
			sign(r, 7, 7, time.Now())
			r.Header.Del(flist.HeaderNonce)
		}, http.StatusUnauthorized},
		{"no body hash", "/api/flist/twin7/big.fl", size, func(r *http.Request) {
			sign(r, 7, 7, time.Now())
			r.Header.Del(flist.HeaderContentSHA256)
		}, http.StatusUnauthorized},
		{"replayed", "/api/flist/twin7/big.fl", size, func(r *http.Request) {
			for _, k := range []string{flist.HeaderTwin, flist.HeaderTime, flist.HeaderNonce, flist.HeaderContentSHA256, flist.HeaderSignature} {
				r.Header.Set(k, replayed.Header.Get(k))
			}
		}, http.StatusUnauthorized},
		{"squatter", "/api/flist/twin7/big.fl", size, func(r *http.Request) { sign(r, 9, 9, time.Now()) }, http.StatusForbidden},
		{"says it is too large", "/api/flist/twin7/big.fl", h.cfg.MaxFlist + 1, func(r *http.Request) { sign(r, 7, 7, time.Now()) }, http.StatusRequestEntityTooLarge},
		{"block says it is too large", "/api/v1/blocks/" + strings.Repeat("ab", 32), h.cfg.MaxBlock + 1, func(r *http.Request) { sign(r, 7, 7, time.Now()) }, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, h.cfg.Dir)
			body := &zeros{n: size}
			if tt.length > 0 {
				body.n = tt.length
			}
			r := httptest.NewRequest(http.MethodPut, tt.path, body)
			r.ContentLength = tt.length
			tt.sign(r)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			w := serve(h, r)
			runtime.ReadMemStats(&m1)
			if w.Code != tt.want {
				t.Errorf("got %d %q, want %d", w.Code, w.Body.String(), tt.want)
			}
			if body.read > 64<<10 {
				t.Errorf("hub read %d bytes of the body, want none", body.read)
			}
			if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 8<<20 {
				t.Errorf("hub allocated %d bytes, want far less than the %d of the body", alloc, size)
			}
			if after := snapshot(t, h.cfg.Dir); after != before {
				t.Errorf("hub directory changed:\n%s\nwant\n%s", after, before)
			}
		})
	}
}

// TestOversizeStreamRefused: a signed body streamed past its route's limit
// is cut off at the limit and leaves nothing.
func TestOversizeStreamRefused(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{MaxBlock: 1 << 20}, tw)
	before := snapshot(t, h.cfg.Dir)
	body := &zeros{n: 64 << 20}
	r := httptest.NewRequest(http.MethodPut, "/api/v1/blocks/"+strings.Repeat("ab", 32), body)
	r.ContentLength = -1
	if err := flist.SignRequest(r, tw.signer(7), [32]byte{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	w := serve(h, r)
	runtime.ReadMemStats(&m1)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d %q, want 413", w.Code, w.Body.String())
	}
	if body.read > 2<<20 {
		t.Errorf("hub read %d bytes, want about the 1 MiB limit", body.read)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 8<<20 {
		t.Errorf("hub allocated %d bytes streaming a refused body", alloc)
	}
	if after := snapshot(t, h.cfg.Dir); after != before {
		t.Errorf("hub directory changed:\n%s\nwant\n%s", after, before)
	}
}

// TestReplayRefused: a signed request seen once is refused when sent again,
// even after the twin changed what it did (a replayed old upload would roll
// a flist back).
func TestReplayRefused(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{}, tw)
	v1, v2 := testFlist(t, "v1"), testFlist(t, "v2")
	first := signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/app.fl", v1)
	replay := first.Clone(first.Context())
	replay.Body = io.NopCloser(bytes.NewReader(v1))
	if w := serve(h, first); w.Code != http.StatusCreated {
		t.Fatalf("v1: got %d %q", w.Code, w.Body.String())
	}
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/app.fl", v2)); w.Code != http.StatusCreated {
		t.Fatalf("v2: got %d %q", w.Code, w.Body.String())
	}
	w := serve(h, replay)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "replayed") {
		t.Errorf("replay of v1: got %d %q, want 401 replayed", w.Code, w.Body.String())
	}
	if got := serve(h, httptest.NewRequest(http.MethodGet, "/twin7/app.fl", nil)).Body.String(); got != string(v2) {
		t.Errorf("twin7/app.fl rolled back by a replay")
	}
	// The same headers on another path do not verify.
	moved := first.Clone(first.Context())
	moved.URL.Path = "/api/flist/twin7/other.fl"
	moved.Body = io.NopCloser(bytes.NewReader(v1))
	if w := serve(h, moved); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "bad signature") {
		t.Errorf("signature moved to another path: got %d %q, want 401 bad signature", w.Code, w.Body.String())
	}
}

// TestBodyNotAsSignedStoresNothing: an upload whose body is not the one
// whose hash was signed (swapped in transit) is refused and leaves nothing.
func TestBodyNotAsSignedStoresNothing(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{}, tw)
	signedFl, swappedFl := testFlist(t, "signed"), testFlist(t, "swapped")
	_, block, err := flist.SealBlock([]byte("block"))
	if err != nil {
		t.Fatal(err)
	}
	ref, _, _ := flist.SealBlock([]byte("block"))
	tests := []struct {
		name         string
		path         string
		signed, sent []byte
	}{
		{"flist", "/api/flist/twin7/app.fl", signedFl, swappedFl},
		{"flist cut short", "/api/flist/twin7/app.fl", signedFl, signedFl[:len(signedFl)/2]},
		{"block", "/api/v1/blocks/" + hex.EncodeToString(ref.ID[:]), block, append([]byte{}, block[1:]...)},
		{"tag", "/api/flist/twin7/tags/latest", []byte(`{"target":"a.fl"}`), []byte(`{"target":"b.fl"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, h.cfg.Dir)
			r := signedRequest(t, tw.signer(7), http.MethodPut, tt.path, tt.signed)
			r.Body = io.NopCloser(bytes.NewReader(tt.sent))
			r.ContentLength = int64(len(tt.sent))
			w := serve(h, r)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "does not match") {
				t.Errorf("got %d %q, want 400 does not match", w.Code, w.Body.String())
			}
			if after := snapshot(t, h.cfg.Dir); after != before {
				t.Errorf("hub directory changed:\n%s\nwant\n%s", after, before)
			}
		})
	}
}

// TestUploadsAtOnceBounded: a twin past its uploads at once, or the hub
// past its total, is told to wait (429) without its body being read; the
// others go on, and the twin succeeds once a slot is free.
func TestUploadsAtOnceBounded(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{MaxUploads: 2, MaxUploadsPerTwin: 1}, tw)
	type held struct {
		pw   *io.PipeWriter
		rest []byte
		done chan *httptest.ResponseRecorder
	}
	// hold starts an honest block upload whose body is held back.
	hold := func(twin uint32, plain string) *held {
		ref, data, err := flist.SealBlock([]byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		r := signedRequest(t, tw.signer(twin), http.MethodPut, "/api/v1/blocks/"+hex.EncodeToString(ref.ID[:]), data)
		pr, pw := io.Pipe()
		r.Body = pr
		hd := &held{pw: pw, rest: data[1:], done: make(chan *httptest.ResponseRecorder, 1)}
		go func() { hd.done <- serve(h, r) }()
		if _, err := pw.Write(data[:1]); err != nil { // returns once the hub reads
			t.Fatal(err)
		}
		return hd
	}
	finish := func(hd *held) {
		t.Helper()
		if _, err := hd.pw.Write(hd.rest); err != nil {
			t.Fatal(err)
		}
		hd.pw.Close()
		if w := <-hd.done; w.Code != http.StatusCreated {
			t.Errorf("held upload: got %d %q, want 201", w.Code, w.Body.String())
		}
	}
	tryUpload := func(twin uint32, plain string) (*httptest.ResponseRecorder, *zeros) {
		ref, data, _ := flist.SealBlock([]byte(plain))
		r := signedRequest(t, tw.signer(twin), http.MethodPut, "/api/v1/blocks/"+hex.EncodeToString(ref.ID[:]), data)
		z := &zeros{n: 1 << 20}
		if plain == "" {
			r.Body = io.NopCloser(z)
		}
		return serve(h, r), z
	}

	a := hold(1, "a")
	w, z := tryUpload(1, "")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || z.read != 0 {
		t.Errorf("twin 1's second upload at once: got %d %q (read %d), want 429 with Retry-After, unread", w.Code, w.Body.String(), z.read)
	}
	b := hold(2, "b")
	if w, _ := tryUpload(3, ""); w.Code != http.StatusTooManyRequests {
		t.Errorf("third upload past the hub's total: got %d %q, want 429", w.Code, w.Body.String())
	}
	finish(a)
	if w, _ := tryUpload(3, "c"); w.Code != http.StatusCreated {
		t.Errorf("twin 3 once a slot is free: got %d %q, want 201", w.Code, w.Body.String())
	}
	finish(b)
	if w, _ := tryUpload(1, "d"); w.Code != http.StatusCreated {
		t.Errorf("twin 1 after its upload ended: got %d %q, want 201", w.Code, w.Body.String())
	}
	if h.slots.total != 0 || len(h.slots.per) != 0 {
		t.Errorf("slots left taken: %d %v", h.slots.total, h.slots.per)
	}
	if n, _ := os.ReadDir(h.tmpDir()); len(n) != 0 {
		t.Errorf("temporary files left: %v", n)
	}
}

// TestHonestUploads: blocks, flists and tags signed by their owner go in,
// deduplicated blocks are counted, and nothing is left in tmp.
func TestHonestUploads(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{}, tw)
	ref, data, _ := flist.SealBlock([]byte(strings.Repeat("data", 1000)))
	path := "/api/v1/blocks/" + hex.EncodeToString(ref.ID[:])
	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, path, data)); w.Code != want {
			t.Errorf("block upload %d: got %d %q, want %d", i, w.Code, w.Body.String(), want)
		}
	}
	if s := h.Stats(); s.BlocksStored != 1 || s.BlocksDedup != 1 {
		t.Errorf("stats: got %+v, want 1 stored 1 dedup", s)
	}
	if w := serve(h, httptest.NewRequest(http.MethodGet, path, nil)); !bytes.Equal(w.Body.Bytes(), data) {
		t.Errorf("block read back differs")
	}
	fl := testFlist(t, "etc")
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/app.fl", fl)); w.Code != http.StatusCreated {
		t.Fatalf("flist: got %d %q", w.Code, w.Body.String())
	}
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/tags/latest", []byte(`{"target":"app.fl"}`))); w.Code != http.StatusCreated {
		t.Fatalf("tag: got %d %q", w.Code, w.Body.String())
	}
	w := serve(h, httptest.NewRequest(http.MethodGet, "/twin7/latest.md5", nil))
	sum := sha256.Sum256(fl)
	if w.Code != http.StatusOK || len(strings.TrimSpace(w.Body.String())) != 32 {
		t.Errorf("md5 by tag: got %d %q", w.Code, w.Body.String())
	}
	if w := serve(h, httptest.NewRequest(http.MethodGet, "/twin7/latest", nil)); sha256.Sum256(w.Body.Bytes()) != sum {
		t.Errorf("download by tag: got %s", hex.EncodeToString(w.Body.Bytes()[:16]))
	}
	if n, _ := os.ReadDir(filepath.Join(h.cfg.Dir, "tmp")); len(n) != 0 {
		t.Errorf("temporary files left: %v", n)
	}
}
