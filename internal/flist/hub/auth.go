package hub

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// signed is a write request whose headers, signature and nonce checked
// out and which holds an upload slot; its body is not read yet.
type signed struct {
	twin    uint32
	sum     [sha256.Size]byte // the body's SHA-256, as declared and signed
	body    io.Reader         // the body, bounded by the route's limit
	release func()            // frees the upload slot
}

// authenticate checks a write request before reading any of its body: the
// headers, the declared length against limit, the twin's signature, the
// nonce (once only) and the twin's and the hub's upload bounds. The caller
// must call release on the result.
func (h *Hub) authenticate(w http.ResponseWriter, r *http.Request, limit int64) (*signed, error) {
	twin, err := strconv.ParseUint(r.Header.Get(flist.HeaderTwin), 10, 32)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, "missing or bad %s", flist.HeaderTwin)
	}
	unixStr := r.Header.Get(flist.HeaderTime)
	unix, err := strconv.ParseInt(unixStr, 10, 64)
	now := h.now()
	if err != nil || now.Sub(time.Unix(unix, 0)).Abs() > h.cfg.MaxSkew {
		return nil, refuse(http.StatusUnauthorized, "missing or stale %s", flist.HeaderTime)
	}
	nonceStr := r.Header.Get(flist.HeaderNonce)
	var nonce [flist.NonceSize]byte
	if !decodeHex(nonce[:], nonceStr) {
		return nil, refuse(http.StatusUnauthorized, "missing or bad %s", flist.HeaderNonce)
	}
	sumStr := r.Header.Get(flist.HeaderContentSHA256)
	var sum [sha256.Size]byte
	if !decodeHex(sum[:], sumStr) {
		return nil, refuse(http.StatusUnauthorized, "missing or bad %s", flist.HeaderContentSHA256)
	}
	var sig [ed25519.SignatureSize]byte
	if !decodeHex(sig[:], r.Header.Get(flist.HeaderSignature)) {
		return nil, refuse(http.StatusUnauthorized, "missing or bad %s", flist.HeaderSignature)
	}
	if r.ContentLength > limit {
		return nil, refuse(http.StatusRequestEntityTooLarge, "body of %d bytes over %d", r.ContentLength, limit)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	pub, err := h.keys.TwinKey(ctx, uint32(twin))
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, "twin %d: %v", twin, err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, refuse(http.StatusUnauthorized, "twin %d has no usable key", twin)
	}
	msg := flist.SignedMessage(r.Method, r.URL.Path, unix, nonceStr, sumStr)
	if !ed25519.Verify(pub, msg, sig[:]) {
		return nil, refuse(http.StatusUnauthorized, "bad signature for twin %d", twin)
	}
	if err := h.replay.use(uint32(twin), nonce, now); err != nil {
		if errors.Is(err, errReplayed) {
			return nil, refuse(http.StatusUnauthorized, "twin %d: %v", twin, err)
		}
		return nil, refuse(http.StatusTooManyRequests, "twin %d: %v", twin, err)
	}
	release, ok := h.slots.acquire(uint32(twin))
	if !ok {
		return nil, refuse(http.StatusTooManyRequests, "twin %d: too many uploads at once", twin)
	}
	return &signed{twin: uint32(twin), sum: sum, body: http.MaxBytesReader(w, r.Body, limit), release: release}, nil
}

// decodeHex decodes s into dst, which it must fill exactly.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

// receiveSmall reads a small signed body whole; on a fault it answers the
// client itself and returns false.
func (h *Hub) receiveSmall(w http.ResponseWriter, r *http.Request, s *signed) ([]byte, bool) {
	var buf bytes.Buffer
	if _, err := s.receive(&buf); err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return buf.Bytes(), true
}

// receive streams the body into dst and checks it against its limit and
// its declared SHA-256. A failure to write dst is an internal error; any
// fault of the body is the client's.
func (s *signed) receive(dst io.Writer) (int64, error) {
	hs := sha256.New()
	ew := &errWriter{w: dst}
	n, err := io.Copy(io.MultiWriter(ew, hs), s.body)
	if ew.err != nil {
		return n, ew.err
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return n, refuse(http.StatusRequestEntityTooLarge, "body over %d bytes", tooBig.Limit)
		}
		return n, refuse(http.StatusBadRequest, "reading body: %v", err)
	}
	if !bytes.Equal(hs.Sum(nil), s.sum[:]) {
		return n, refuse(http.StatusBadRequest, "body does not match its %s", flist.HeaderContentSHA256)
	}
	return n, nil
}

// errWriter keeps the first error of w, telling it apart from the reader's.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
