package flist

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// Hub request signing. A signed request carries its twin, its time, a fresh
// nonce and the SHA-256 of its body in headers, and an ed25519 signature by
// the twin's key over SignedMessage of them. The hub checks all of it before
// it reads the body, streams the body through SHA-256 and keeps it only if
// the sum matches; it remembers nonces for as long as a time is accepted, so
// a request cannot be replayed.
const (
	HeaderTwin          = "X-Zos-Twin"
	HeaderTime          = "X-Zos-Time"
	HeaderNonce         = "X-Zos-Nonce"
	HeaderContentSHA256 = "X-Zos-Content-Sha256"
	HeaderSignature     = "X-Zos-Signature"
)

// NonceSize is the bytes of a request nonce (sent as hex).
const NonceSize = 16

// signedPrefix versions what a signature covers: a signature made for
// another purpose (or an older hub protocol) never verifies here.
const signedPrefix = "zos-hub-request-v2"

// SignedMessage is what a hub request's signature covers: the method, the
// path, the unix time, the nonce and the body's SHA-256, each as sent in
// hex, one a line after a version line.
func SignedMessage(method, path string, unix int64, nonce, bodySHA256 string) []byte {
	return []byte(signedPrefix + "\n" + method + "\n" + path + "\n" + strconv.FormatInt(unix, 10) + "\n" + nonce + "\n" + bodySHA256)
}

// SignRequest signs req as s's twin at now, for a body whose SHA-256 is
// bodySHA256, with a fresh nonce.
func SignRequest(req *http.Request, s Signer, bodySHA256 [sha256.Size]byte, now time.Time) error {
	return signRequest(req, req.URL.Path, s, bodySHA256, now)
}

// signRequest signs req for the hub path path (req's path less the prefix
// of a hub's base URL).
func signRequest(req *http.Request, path string, s Signer, bodySHA256 [sha256.Size]byte, now time.Time) error {
	var nonce [NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("making nonce: %w", err)
	}
	n, sum, unix := hex.EncodeToString(nonce[:]), hex.EncodeToString(bodySHA256[:]), now.Unix()
	req.Header.Set(HeaderTwin, strconv.FormatUint(uint64(s.TwinID()), 10))
	req.Header.Set(HeaderTime, strconv.FormatInt(unix, 10))
	req.Header.Set(HeaderNonce, n)
	req.Header.Set(HeaderContentSHA256, sum)
	req.Header.Set(HeaderSignature, hex.EncodeToString(s.Sign(SignedMessage(req.Method, path, unix, n, sum))))
	return nil
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

// hubRetries is how often Do tries again when the hub is busy (429).
const hubRetries = 6

// Do sends a request (a write is signed when the client has a signer;
// reading is open) and returns the body of a 2xx answer; other statuses
// are errors carrying the hub's text. A 404 wraps ErrNotFound. A busy hub
// (429) is asked again a few times, after the wait it names, each time
// signed anew.
func (c *HubClient) Do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	sum := sha256.Sum256(body)
	for attempt := 0; ; attempt++ {
		status, wait, out, err := c.send(ctx, method, path, body, sum)
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusTooManyRequests && attempt < hubRetries:
			if wait <= 0 {
				wait = 100 * time.Millisecond << attempt
			}
			t := time.NewTimer(min(wait, 5*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("hub %s %s: %w", method, path, ctx.Err())
			case <-t.C:
			}
			continue
		case status == http.StatusNotFound:
			return nil, fmt.Errorf("hub %s %s: %w", method, path, ErrNotFound)
		case status/100 != 2:
			return nil, fmt.Errorf("hub %s %s: %d %s: %s", method, path, status, http.StatusText(status), strings.TrimSpace(string(out)))
		}
		return out, nil
	}
}

// send makes one attempt of Do: the status, the wait a 429 asks for, and
// the answer's body.
func (c *HubClient) send(ctx context.Context, method, path string, body []byte, sum [sha256.Size]byte) (int, time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, nil, err
	}
	if c.signer != nil && method != http.MethodGet && method != http.MethodHead {
		if err := signRequest(req, path, c.signer, sum, time.Now()); err != nil {
			return 0, 0, nil, err
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("hub %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, 512<<20))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("hub %s %s: reading answer: %w", method, path, err)
	}
	var wait time.Duration
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
		wait = time.Duration(s) * time.Second
	}
	return res.StatusCode, wait, out, nil
}

// KeySigner signs hub requests as a twin.
type KeySigner struct {
	Twin uint32
	Key  identity.Key
}

var _ Signer = KeySigner{}

// TwinID returns the twin.
func (s KeySigner) TwinID() uint32 { return s.Twin }

// Sign signs msg with the twin's key.
func (s KeySigner) Sign(msg []byte) []byte { return s.Key.Sign(msg) }

// HubInfo describes a flist or a tag on a hub.
type HubInfo struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Target  string `json:"target,omitempty"`
	Size    int64  `json:"size"`
	MD5     string `json:"md5"`
	Updated int64  `json:"updated"`
	Owner   uint32 `json:"owner,omitempty"`
}

func flistPath(repo, name string) string {
	return "/api/flist/" + url.PathEscape(repo) + "/" + url.PathEscape(name)
}

// Upload stores a flist file's bytes as repo/name.
func (c *HubClient) Upload(ctx context.Context, repo, name string, data []byte) (HubInfo, error) {
	var info HubInfo
	out, err := c.Do(ctx, http.MethodPut, flistPath(repo, name), data)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(out, &info)
}

// Tag points repo/tag at the flist repo/target.
func (c *HubClient) Tag(ctx context.Context, repo, tag, target string) (HubInfo, error) {
	var info HubInfo
	body, _ := json.Marshal(map[string]string{"target": target})
	out, err := c.Do(ctx, http.MethodPut, "/api/flist/"+url.PathEscape(repo)+"/tags/"+url.PathEscape(tag), body)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(out, &info)
}

// Repos lists the repositories.
func (c *HubClient) Repos(ctx context.Context) ([]string, error) {
	var out []string
	b, err := c.Do(ctx, http.MethodGet, "/api/flist", nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("reading repositories: %w", err)
	}
	return out, nil
}

// List lists the flists and tags of a repository.
func (c *HubClient) List(ctx context.Context, repo string) ([]HubInfo, error) {
	var out []HubInfo
	b, err := c.Do(ctx, http.MethodGet, "/api/flist/"+url.PathEscape(repo), nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("reading repository %s: %w", repo, err)
	}
	return out, nil
}

// Download fetches the flist (or the flist a tag names) repo/name.
func (c *HubClient) Download(ctx context.Context, repo, name string) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, "/"+url.PathEscape(repo)+"/"+url.PathEscape(name), nil)
}
