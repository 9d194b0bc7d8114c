package rmb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
)

// Client calls commands on other twins. It is safe for concurrent use.
type Client struct {
	nc    *nats.Conn
	twin  uint32
	key   identity.Key
	peers *peers
	o     *options
	err   error // construction error, returned by every Call
}

// NewClient returns a client that sends as twin, signing with key and
// resolving the keys of destination twins through r (cached).
func NewClient(nc *nats.Conn, twin uint32, key identity.Key, r TwinResolver, opts ...Option) *Client {
	o := buildOptions(opts)
	c := &Client{nc: nc, twin: twin, key: key, o: o}
	c.peers, c.err = newPeers(key, r, o)
	return c
}

// Call sends cmd with req (JSON-encoded, encrypted to dst) to twin dst and
// decodes the answer into resp (unless resp is nil). The envelope's ttl is
// the time left before ctx's deadline, else the default ttl. An error the
// remote twin answered is a *RemoteError (errors.As), matching the
// sentinel of its code (errors.Is(err, ErrReplay)...).
func (c *Client) Call(ctx context.Context, dst uint32, cmd string, req any, resp any) error {
	if err := c.call(ctx, dst, cmd, req, resp); err != nil {
		return fmt.Errorf("calling %s on twin %d: %w", cmd, dst, err)
	}
	return nil
}

func (c *Client) call(ctx context.Context, dst uint32, cmd string, req any, resp any) error {
	if c.err != nil {
		return c.err
	}
	if len(cmd) == 0 || len(cmd) > MaxCommandLen {
		return fmt.Errorf("%w: command of %d bytes, want 1 to %d", ErrMalformed, len(cmd), MaxCommandLen)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding request: %w", err)
	}
	if len(body) > c.o.maxPayload {
		return fmt.Errorf("%w: request of %d bytes, limit %d", ErrTooLarge, len(body), c.o.maxPayload)
	}
	ttl := c.o.defaultTTL
	if dl, ok := ctx.Deadline(); ok {
		ttl = time.Until(dl)
	}
	ttl = min(ttl, c.o.maxTTL)
	if c.o.callTimeout > 0 {
		ttl = min(ttl, c.o.callTimeout)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: no time left before the deadline", ErrTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, ttl)
	defer cancel()

	p, err := c.peers.get(ctx, dst)
	if err != nil {
		return err
	}
	id, err := newID()
	if err != nil {
		return err
	}
	env := &Envelope{
		Kind:      KindRequest,
		Flags:     FlagSealed,
		ID:        id,
		Src:       c.twin,
		Dst:       dst,
		Timestamp: c.o.now(),
		TTL:       ttl,
		Command:   cmd,
	}
	if env.Payload, err = seal(p.aead, env.header(), body); err != nil {
		return err
	}
	wire, err := env.Sign(c.key)
	if err != nil {
		return fmt.Errorf("signing envelope: %w", err)
	}
	if mp := c.nc.MaxPayload(); mp > 0 && int64(len(wire)) > mp {
		return fmt.Errorf("%w: envelope of %d bytes over the NATS server's max_payload %d", ErrTooLarge, len(wire), mp)
	}
	msg, err := c.nc.RequestWithContext(ctx, RequestSubject(dst), wire)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: no server on %s", ErrUnreachable, RequestSubject(dst))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: no answer within %s: %w", ErrTimeout, ttl.Round(time.Millisecond), err)
	case err != nil:
		return fmt.Errorf("sending request: %w", err)
	}
	return c.readReply(ctx, env, p, msg.Data, resp)
}

// readReply checks the answer to req and decodes it.
func (c *Client) readReply(ctx context.Context, req *Envelope, p *peer, data []byte, resp any) error {
	if len(data) > c.o.maxPayload+SealOverhead+Overhead+MaxCommandLen {
		return fmt.Errorf("%w: reply of %d bytes", ErrTooLarge, len(data))
	}
	r, err := Decode(data)
	if err != nil {
		return fmt.Errorf("reading reply: %w", err)
	}
	if r.Kind == KindRequest || r.Src != req.Dst || r.Dst != req.Src || r.Ref != req.ID {
		return fmt.Errorf("%w: %s from twin %d to twin %d for %s does not answer request %s",
			ErrMalformed, r.Kind, r.Src, r.Dst, r.Ref, req.ID)
	}
	// A sealed reply is authenticated by the AEAD: its key is known only to
	// the two twins and its associated data is the whole header (ids, twins,
	// time, command), so it could only come from dst: the server sends it
	// with a zero signature (EncodeSealedReply). The signature is checked on
	// plain (error) replies, which have no other protection.
	if r.Flags&FlagSealed == 0 && !r.Verify(p.pub) {
		p2, ok := c.peers.refresh(ctx, req.Dst, p)
		if !ok || !r.Verify(p2.pub) {
			return fmt.Errorf("%w: reply signature does not verify against twin %d's key", ErrUnauthorized, req.Dst)
		}
		p = p2
	}
	// An authentic answer to this request (its ref is our fresh id) cannot
	// be a replay, so the times of an error reply are not held against
	// it: a skewed clock gets the remote twin's error, which names the
	// skew, rather than a complaint about the reply's time.
	var timeErr error
	now := c.o.now()
	if now.After(r.Expires()) {
		timeErr = fmt.Errorf("%w: reply expired at %s", ErrExpired, r.Expires().UTC().Format(time.RFC3339Nano))
		if d := r.Timestamp.Sub(now); d < -c.o.maxSkew-r.TTL {
			timeErr = fmt.Errorf("%w: %s", timeErr, skewMessage("reply", r.Timestamp, d, "this twin", c.o.maxSkew))
		}
	}
	if r.Timestamp.After(now.Add(c.o.maxSkew)) {
		timeErr = fmt.Errorf("%w: %s", ErrExpired, skewMessage("reply", r.Timestamp, r.Timestamp.Sub(now), "this twin", c.o.maxSkew))
	}
	body := r.Payload
	switch {
	case r.Flags&FlagSealed != 0:
		if body, err = open(p.aead, r.header(), r.Payload); err != nil {
			return fmt.Errorf("opening reply: %w", err)
		}
	case r.Kind == KindReply:
		// Only errors raised before the server knew our key are plain.
		return fmt.Errorf("%w: reply payload is not encrypted", ErrUnauthorized)
	}
	if r.Kind == KindError {
		var re RemoteError
		if err := json.Unmarshal(body, &re); err != nil {
			return fmt.Errorf("%w: error reply: %v", ErrMalformed, err)
		}
		return &re
	}
	if timeErr != nil {
		return timeErr
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(body, resp); err != nil {
		return fmt.Errorf("decoding reply: %w", err)
	}
	return nil
}
