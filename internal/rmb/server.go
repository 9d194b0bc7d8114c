package rmb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/loglimit"
)

// HandlerFunc answers a command from twin src. payload is the decrypted
// JSON request. The result is JSON-encoded and encrypted back; an error is
// answered as a *RemoteError (the handler's own *RemoteError keeps its code,
// any other error has CodeHandler and its message). ctx ends at the
// request's expiry or when the server stops.
type HandlerFunc func(ctx context.Context, src uint32, payload []byte) (any, error)

// Server answers the commands sent to one twin.
type Server struct {
	nc      *nats.Conn
	twin    uint32
	key     identity.Key
	peers   *peers
	replay  *replayCache
	o       *options
	log     *slog.Logger
	limiter *loglimit.Limiter
	err     error // construction error, returned by Serve

	mu       sync.RWMutex // guards handlers
	handlers map[string]HandlerFunc
}

// replyTTL is the ttl of replies: long enough for any clock skew, short
// enough that a captured reply is soon worthless.
const replyTTL = time.Minute

// flushTimeout bounds the wait for the server to confirm the subscription.
const flushTimeout = 10 * time.Second

// NewServer returns a server for twin, signing its replies with key and
// resolving the keys of sending twins through r (cached).
func NewServer(nc *nats.Conn, twin uint32, key identity.Key, r TwinResolver, log *slog.Logger, opts ...Option) *Server {
	o := buildOptions(opts)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		nc:       nc,
		twin:     twin,
		key:      key,
		replay:   newReplayCache(o.replayEntries),
		o:        o,
		log:      log.With("component", "rmb.server", "twin", twin),
		limiter:  loglimit.New(time.Second),
		handlers: make(map[string]HandlerFunc),
	}
	s.peers, s.err = newPeers(key, r, o)
	return s
}

// Handle routes cmd to h. It may be called before or while serving.
func (s *Server) Handle(cmd string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[cmd] = h
}

func (s *Server) handler(cmd string) (HandlerFunc, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.handlers[cmd]
	return h, ok
}

// Serve subscribes to the twin's inbox (RequestSubject) and answers
// requests with a bounded pool of workers until ctx ends or the connection
// is closed. Several servers of one twin share the load (queue group). On
// return it has stopped its workers, waiting a few seconds at most for
// handlers that ignore their context.
func (s *Server) Serve(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	work := make(chan *nats.Msg, s.o.concurrency)
	stop := make(chan struct{})
	sub, err := s.nc.QueueSubscribe(RequestSubject(s.twin), serverQueue, func(m *nats.Msg) {
		select {
		case work <- m:
		case <-stop:
		}
	})
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", RequestSubject(s.twin), err)
	}
	// Messages waiting beyond this are dropped by the client library (a
	// slow consumer); their senders time out.
	if err := sub.SetPendingLimits(s.o.pending, 16*s.o.maxPayload); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("limiting pending messages: %w", err)
	}
	if err := s.nc.FlushTimeout(flushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribing to %s: %w", RequestSubject(s.twin), err)
	}
	s.log.Info("serving", "subject", RequestSubject(s.twin), "workers", s.o.concurrency)

	// Handlers get hctx: it ends with ctx, and also when Serve returns
	// because the connection closed.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range s.o.concurrency {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case m := <-work:
					s.handle(hctx, m)
				}
			}
		})
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var result error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-tick.C:
			if s.nc.IsClosed() {
				result = fmt.Errorf("serving %s: %w", RequestSubject(s.twin), nats.ErrConnectionClosed)
				break wait
			}
		}
	}

	// Teardown: stop taking messages, then stop the workers; handlers see
	// ctx done and should return promptly.
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.log.Warn("unsubscribe_error", "err", err)
	} else if err == nil {
		// Make sure the NATS server knows before we return, so that a new
		// Serve does not share the queue group with this one.
		_ = s.nc.FlushTimeout(time.Second)
	}
	close(stop)
	cancel()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.log.Error("handlers_still_running", "after", shutdownGrace)
	}
	// Requests received but not started are told so rather than left to
	// time out.
	for {
		select {
		case m := <-work:
			s.answerError(m, headerOf(m.Data), nil, remoteErr(CodeBusy, "twin %d is stopping its server", s.twin))
		default:
			return result
		}
	}
}

// handle checks one request and answers it.
func (s *Server) handle(ctx context.Context, m *nats.Msg) {
	if m.Reply == "" {
		s.reject(nil, "", remoteErr(CodeMalformed, "request without a reply subject"))
		return
	}
	limit := s.o.maxPayload + SealOverhead + Overhead + MaxCommandLen
	if len(m.Data) > limit {
		s.answerError(m, headerOf(m.Data), nil, remoteErr(CodeTooLarge, "envelope of %d bytes, limit %d", len(m.Data), limit))
		return
	}
	env, err := Decode(m.Data)
	if err != nil {
		s.answerError(m, headerOf(m.Data), nil, remoteErr(CodeMalformed, "%v", err))
		return
	}
	if env.Kind != KindRequest {
		s.answerError(m, env, nil, remoteErr(CodeMalformed, "%s envelope sent as a request", env.Kind))
		return
	}
	if env.Dst != s.twin {
		s.answerError(m, env, nil, remoteErr(CodeWrongDest, "envelope for twin %d reached twin %d", env.Dst, s.twin))
		return
	}
	now := s.o.now()
	if env.TTL > s.o.maxTTL {
		s.answerError(m, env, nil, remoteErr(CodeMalformed, "ttl %s over the limit %s", env.TTL, s.o.maxTTL))
		return
	}
	if now.After(env.Expires()) {
		msg := fmt.Sprintf("envelope %s expired %s ago", env.ID, now.Sub(env.Expires()).Round(time.Millisecond))
		if d := env.Timestamp.Sub(now); d < -s.o.maxSkew-env.TTL {
			// Older than any relay delay: the sender's clock is behind.
			msg += ": " + skewMessage("request", env.Timestamp, d, fmt.Sprintf("twin %d", s.twin), s.o.maxSkew)
		}
		s.answerError(m, env, nil, remoteErr(CodeExpired, "%s", msg))
		return
	}
	if d := env.Timestamp.Sub(now); d > s.o.maxSkew {
		s.answerError(m, env, nil, remoteErr(CodeExpired, "envelope %s: %s", env.ID, skewMessage("request", env.Timestamp, d, fmt.Sprintf("twin %d", s.twin), s.o.maxSkew)))
		return
	}
	// From here on, deadline is the request's expiry on the real clock.
	deadline := time.Now().Add(env.Expires().Sub(now))
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	p, err := s.peers.get(dctx, env.Src)
	if err != nil {
		s.answerError(m, env, nil, remoteErr(CodeUnauthorized, "unknown source twin %d: %v", env.Src, err))
		return
	}
	if !env.Verify(p.pub) {
		p2, ok := s.peers.refresh(dctx, env.Src, p)
		if !ok || !env.Verify(p2.pub) {
			s.answerError(m, env, nil, remoteErr(CodeUnauthorized, "signature of envelope %s does not verify against twin %d's key", env.ID, env.Src))
			return
		}
		p = p2
	}
	// The sender is authentic: errors from here on are encrypted to it.
	if env.Flags&FlagSealed == 0 {
		s.answerError(m, env, p, remoteErr(CodeUnauthorized, "payload is not encrypted"))
		return
	}
	switch s.replay.add(env.Src, env.ID, env.Expires(), now) {
	case replaySeen:
		s.answerError(m, env, p, remoteErr(CodeReplay, "envelope %s from twin %d was already received", env.ID, env.Src))
		return
	case replayFull:
		s.answerError(m, env, p, remoteErr(CodeBusy, "too many recent requests, retry later"))
		return
	}
	plain, err := open(p.aead, env.header(), env.Payload)
	if err != nil {
		s.answerError(m, env, p, remoteErr(CodeUnauthorized, "%v", err))
		return
	}
	if len(plain) > s.o.maxPayload {
		s.answerError(m, env, p, remoteErr(CodeTooLarge, "payload of %d bytes, limit %d", len(plain), s.o.maxPayload))
		return
	}
	h, ok := s.handler(env.Command)
	if !ok {
		s.answerError(m, env, p, remoteErr(CodeUnknownCommand, "unknown command %q", env.Command))
		return
	}
	s.run(dctx, m, env, p, h, plain, deadline)
}

// run calls the handler. If it has not answered by the deadline, a timeout
// error is sent at once; the worker stays with the handler until it returns.
func (s *Server) run(ctx context.Context, m *nats.Msg, env *Envelope, p *peer, h HandlerFunc, plain []byte, deadline time.Time) {
	var answered atomic.Bool
	timer := time.AfterFunc(time.Until(deadline), func() {
		if answered.CompareAndSwap(false, true) {
			s.answerError(m, env, p, remoteErr(CodeTimeout, "handler of %q did not answer within the ttl %s", env.Command, env.TTL))
		}
	})
	res, herr := s.call(ctx, h, env.Src, plain)
	timer.Stop()
	if !answered.CompareAndSwap(false, true) {
		s.log.Warn("late_handler", "command", env.Command, "src", env.Src, "id", env.ID.String())
		return
	}
	if herr != nil {
		var re *RemoteError
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.As(herr, &re) {
			re = remoteErr(CodeTimeout, "handler of %q did not answer within the ttl %s: %v", env.Command, env.TTL, herr)
		} else if !errors.As(herr, &re) {
			re = &RemoteError{Code: CodeHandler, Message: herr.Error()}
		}
		s.answerError(m, env, p, re)
		return
	}
	body, err := json.Marshal(res)
	if err != nil {
		s.answerError(m, env, p, remoteErr(CodeHandler, "encoding result: %v", err))
		return
	}
	if len(body) > s.o.maxPayload {
		s.answerError(m, env, p, remoteErr(CodeTooLarge, "result of %d bytes, limit %d", len(body), s.o.maxPayload))
		return
	}
	s.answer(m, env, p, KindReply, body)
}

// call runs a handler, turning a panic into an error.
func (s *Server) call(ctx context.Context, h HandlerFunc, src uint32, payload []byte) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler_panic", "src", src, "panic", fmt.Sprint(r))
			res, err = nil, &RemoteError{Code: CodeHandler, Message: "handler failed"}
		}
	}()
	return h(ctx, src, payload)
}

// headerOf recovers what it can of a request too large or malformed to
// decode, so that the error reply names it; nil when even that fails.
func headerOf(b []byte) *Envelope {
	if len(b) < fixedHeader || string(b[:4]) != magic {
		return nil
	}
	e := &Envelope{}
	copy(e.ID[:], b[8:24])
	e.Src = binary.BigEndian.Uint32(b[40:44])
	return e
}

// answerError sends an error reply: encrypted when p is known.
func (s *Server) answerError(m *nats.Msg, req *Envelope, p *peer, re *RemoteError) {
	s.reject(req, m.Subject, re)
	body, err := json.Marshal(re)
	if err != nil {
		return
	}
	s.answer(m, req, p, KindError, body)
}

func (s *Server) reject(req *Envelope, subject string, re *RemoteError) {
	if re.Code == CodeHandler || re.Code == CodeUnknownCommand {
		return // an answer, not a rejected envelope
	}
	if n, ok := s.limiter.Allow(fmt.Sprint(re.Code)); ok {
		var src uint32
		if req != nil {
			src = req.Src
		}
		s.log.Info("request_rejected", "code", re.Code, "reason", re.Message, "src", src, "subject", subject, "suppressed", n)
	}
}

// replyAllowed reports whether a reply to req may go to m.Reply: only to
// the inbox of the twin the request names as its source (verified when p
// is known), never to a subject the requester chose elsewhere: a reply
// subject is the requester's word, and the answer is sent with this
// twin's rights.
func (s *Server) replyAllowed(m *nats.Msg, req *Envelope, p *peer) bool {
	if req == nil {
		return false
	}
	if p == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if p, err = s.peers.get(ctx, req.Src); err != nil {
			return false
		}
	}
	return strings.HasPrefix(m.Reply, InboxPrefix(p.pub)+".")
}

// answer seals (or, when p is unknown, signs) and sends a reply to req (nil when not decodable), if the
// reply subject is the requester's own inbox.
func (s *Server) answer(m *nats.Msg, req *Envelope, p *peer, kind Kind, body []byte) {
	if !s.replyAllowed(m, req, p) {
		if n, ok := s.limiter.Allow("reply_refused"); ok {
			s.log.Info("reply_refused", "reply", m.Reply, "suppressed", n)
		}
		return
	}
	id, err := newID()
	if err != nil {
		s.log.Error("reply_error", "err", err)
		return
	}
	env := &Envelope{Kind: kind, ID: id, Src: s.twin, Timestamp: s.o.now(), TTL: replyTTL}
	if req != nil {
		env.Ref, env.Dst = req.ID, req.Src
		if len(req.Command) <= MaxCommandLen {
			env.Command = req.Command
		}
	}
	var wire []byte
	if p != nil {
		// Sealed: the AEAD authenticates it, no signature (see the wire
		// format in envelope.go).
		env.Flags = FlagSealed
		if env.Payload, err = seal(p.aead, env.header(), body); err == nil {
			wire, err = env.EncodeSealedReply()
		}
	} else {
		env.Payload = body
		wire, err = env.Sign(s.key)
	}
	if err != nil {
		s.log.Error("reply_error", "err", err)
		return
	}
	if err := m.Respond(wire); err != nil {
		if n, ok := s.limiter.Allow("respond"); ok {
			s.log.Warn("reply_error", "err", err, "suppressed", n)
		}
	}
}
