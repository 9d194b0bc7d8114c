package registry

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/loglimit"
)

// QueueGroup is the NATS queue group of the registry services: several
// zgrid processes share the requests.
const QueueGroup = "zos-registry"

// Config configures a registry service.
type Config struct {
	// Replicas of the KV buckets and the events stream (1 on a single
	// server, 3 in a cluster).
	Replicas int
	// MaxSkew is how far a write's timestamp may be from the service's
	// clock (default 60 s).
	MaxSkew time.Duration
	// Workers is how many requests are handled at once (default 32).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// KeyRate and KeyBurst limit the requests of each twin key
	// (default DefaultKeyRate and DefaultKeyBurst; limit.go).
	KeyRate  float64
	KeyBurst int
	// Observe, when set, is told of every request served: its operation,
	// how long it took and its outcome ("ok" or the error code), for the
	// grid's metrics.
	Observe func(op string, took time.Duration, code string)
	// Store, when set, is asked before each write; while it returns an
	// error, writes are refused at once with ErrStoreFull (reads go on).
	Store StoreGuard
	// PowerEvery is how often the farms' power policies are applied
	// (default 30 s; power.go).
	PowerEvery time.Duration
	// Billing configures balances, usage reports and the billing loop
	// (billing.go).
	Billing BillingConfig
}

// StoreGuard says whether the grid's store takes writes (natsd.Server).
type StoreGuard interface {
	CheckStore() error
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("registry: replicas %d out of range 1..5", c.Replicas)
	}
	if c.MaxSkew < 0 || c.Workers < 0 {
		return errors.New("registry: negative max skew or workers")
	}
	if err := c.Billing.Validate(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// Service serves the registry over NATS.
type Service struct {
	cfg  Config
	nc   *nats.Conn
	st   *store
	log  *slog.Logger
	keys twinKeys
	// notify wakes the event fetches held for a node.
	notify *notifier
	// limit bounds each twin key's request rate.
	limit   *keyLimiter
	pending pending
	dropped *loglimit.Limiter // of the warnings about dropped requests
	// serving is closed once Run has subscribed every operation.
	serving     chan struct{}
	servingOnce sync.Once
}

// handler serves one operation. w is the verified write (its Key in
// lower-case hex), nil for reads.
type handler func(ctx context.Context, w *signedRequest, payload json.RawMessage) (any, error)

// NewService opens (creating when needed) the buckets and the stream on
// nc's JetStream. It retries while JetStream is not ready, until ctx ends.
func NewService(ctx context.Context, cfg Config, nc *nats.Conn, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 60 * time.Second
	}
	if cfg.PowerEvery <= 0 {
		cfg.PowerEvery = 30 * time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 32
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyRate == 0 {
		cfg.KeyRate = DefaultKeyRate
	}
	if cfg.KeyBurst == 0 {
		cfg.KeyBurst = DefaultKeyBurst
	}
	cfg.Billing = cfg.Billing.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	st, err := openStore(ctx, js, cfg.Replicas, 3*cfg.MaxSkew, log)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, nc: nc, st: st, log: log.With("component", "registry"), notify: newNotifier(),
		limit: newKeyLimiter(cfg.KeyRate, cfg.KeyBurst, cfg.Now), serving: make(chan struct{}),
		dropped: loglimit.New(10 * time.Second)}, nil
}

// Serving is closed once Run has subscribed every operation and the
// server has the subscriptions: requests from then on get an answer.
func (s *Service) Serving() <-chan struct{} { return s.serving }

func (s *Service) handlers() map[string]handler {
	return map[string]handler{
		OpTwinCreate:       decoded(s.twinCreate),
		OpFarmCreate:       decoded(s.farmCreate),
		OpFarmAddIP:        decoded(s.farmAddIP),
		OpFarmChannel:      decoded(s.farmChannel),
		OpFarmRemoveIP:     decoded(s.farmRemoveIP),
		OpFarmPowerPolicy:  decoded(s.farmPowerPolicy),
		OpNodeRegister:     decoded(s.nodeRegister),
		OpNodeUptime:       decoded(s.nodeUptime),
		OpNodePublicConfig: decoded(s.nodePublicConfig),
		OpNodeUsed:         decoded(s.nodeUsed),
		OpNodePowerTarget:  decoded(s.nodePowerTarget),
		OpNodePower:        decoded(s.nodePower),
		OpNodeLocation:     decoded(s.nodeLocation),
		OpContractCreate:   decoded(s.contractCreate),
		OpContractUpdate:   decoded(s.contractUpdate),
		OpContractCancel:   decoded(s.contractCancel),
		OpNameCreate:       decoded(s.nameCreate),
		OpRentCreate:       decoded(s.rentCreate),
		OpTwinGet:          decoded(s.twinGet),
		OpTwinList:         decoded(s.twinList),
		OpFarmGet:          decoded(s.farmGet),
		OpFarmList:         decoded(s.farmList),
		OpNodeGet:          decoded(s.nodeGet),
		OpNodeList:         decoded(s.nodeList),
		OpContractGet:      decoded(s.contractGet),
		OpContractList:     decoded(s.contractList),
		OpEventsInfo:       s.eventsInfo,
		OpEventsFetch:      decoded(s.eventsFetch),
		OpBalanceDeposit:   decoded(s.balanceDeposit),
		OpBalanceTransfer:  decoded(s.balanceTransfer),
		OpUsageReport:      decoded(s.usageReport),
		OpBalanceGet:       decoded(s.balanceGet),
		OpLedgerList:       decoded(s.ledgerList),
		OpContractBills:    decoded(s.contractBills),
		OpGridInfo:         decoded(s.gridInfo),
		OpFarmPricing:      decoded(s.farmPricingSet),
		OpContractBilling:  decoded(s.contractBilling),
	}
}

// ServiceSubjects are the subjects the registry serves requests on: the
// only subjects of the grid's NATS account that twins may reach
// (natsd.Config.TwinServices).
func ServiceSubjects() []string {
	var out []string
	for op := range (&Service{}).handlers() {
		out = append(out, SubjectPrefix+op)
	}
	sort.Strings(out)
	return out
}

// held reports whether op may hold its request (a long poll): such
// requests are served outside the worker pool, so that they never keep
// other requests waiting.
func held(op string) bool { return op == OpEventsFetch }

// isWrite reports whether op needs a signature.
func isWrite(op string) bool {
	switch op {
	case OpTwinCreate, OpFarmCreate, OpFarmAddIP, OpFarmChannel, OpFarmRemoveIP, OpFarmPowerPolicy, OpNodeRegister, OpNodeUptime, OpNodePublicConfig,
		OpNodeUsed, OpNodePowerTarget, OpNodePower, OpNodeLocation, OpContractCreate, OpContractUpdate, OpContractCancel, OpNameCreate, OpRentCreate,
		OpBalanceDeposit, OpBalanceTransfer, OpUsageReport, OpFarmPricing:
		return true
	}
	return false
}

type job struct {
	op  string
	key string // the requester's, "" for the grid's own
	msg *nats.Msg
}

// Run serves requests until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	hs := s.handlers()
	jobs := make(chan job, 4*s.cfg.Workers)
	// Held requests run in their own goroutines (bounded: the notifier
	// stops holding beyond maxWaiters), joined after the subscriptions end.
	var (
		heldWG      sync.WaitGroup
		heldMu      sync.Mutex // guards heldStopped and heldWG.Add
		heldStopped bool
	)
	defer func() {
		heldMu.Lock()
		heldStopped = true
		heldMu.Unlock()
		heldWG.Wait()
	}()
	heldSem := make(chan struct{}, maxWaiters)
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	for op := range hs {
		sub, err := s.nc.QueueSubscribe(SubjectPrefix+op, QueueGroup, func(m *nats.Msg) {
			key := requester(m)
			if !s.limit.allow(key) {
				if n, ok := s.dropped.Allow("rate"); ok {
					s.log.Warn("request_rate_limited", "key", key, "op", op, "suppressed", n)
				}
				return
			}
			if !s.pending.acquire(key) {
				s.busy(op, m)
				return
			}
			if held(op) {
				select {
				case heldSem <- struct{}{}:
					heldMu.Lock()
					if heldStopped {
						heldMu.Unlock()
						<-heldSem
						s.pending.release(key)
						return
					}
					heldWG.Add(1)
					heldMu.Unlock()
					go func() {
						defer heldWG.Done()
						defer func() { <-heldSem }()
						defer s.pending.release(key)
						s.serve(ctx, hs[op], op, m)
					}()
					return
				default: // too many held: queue it like any request
				}
			}
			if key == "" {
				// The grid's own requests wait for room.
				select {
				case jobs <- job{op: op, msg: m}:
				case <-ctx.Done():
				}
				return
			}
			select {
			case jobs <- job{op: op, key: key, msg: m}:
			default:
				s.pending.release(key)
				// Full: say so at once rather than stall the subscription
				// (which would drop requests of every twin alike).
				s.busy(op, m)
			}
		})
		if err != nil {
			return fmt.Errorf("subscribing %s: %w", SubjectPrefix+op, err)
		}
		subs = append(subs, sub)
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("flushing subscriptions: %w", err)
	}
	s.log.Info("registry_serving", "replicas", s.cfg.Replicas, "workers", s.cfg.Workers)
	s.servingOnce.Do(func() { close(s.serving) })
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.keys.watch(gctx, s.st.index, s.log) })
	g.Go(func() error { return s.notify.follow(gctx, s.nc) })
	g.Go(func() error { return s.powerLoop(gctx) })
	for range s.cfg.Workers {
		g.Go(func() error {
			for {
				select {
				case <-gctx.Done():
					return nil
				case j := <-jobs:
					s.serve(gctx, hs[j.op], j.op, j.msg)
					s.pending.release(j.key)
				}
			}
		})
	}
	return g.Wait()
}

// serve answers one request.
func (s *Service) serve(ctx context.Context, h handler, op string, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	res, err := s.handle(ctx, h, op, m.Data)
	var resp response
	if err == nil {
		resp.Result, err = json.Marshal(res)
	}
	if s.cfg.Observe != nil {
		code := "ok"
		if err != nil {
			code = codeOf(err)
		}
		s.cfg.Observe(op, time.Since(start), code)
	}
	if err != nil {
		code := codeOf(err)
		if code == "internal" {
			s.log.Error("request_failed", "op", op, "err", err)
		} else {
			s.log.Debug("request_refused", "op", op, "code", code, "err", err)
		}
		resp = response{Error: &wireError{Code: code, Message: err.Error()}}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"encoding response"}}`)
	}
	s.reply(op, m, b)
}

// reply sends an answer. A twin's request (it carries the requester's key,
// limit.go) is answered on that twin's own inbox, named in ReplyHeader; the
// grid's own connections are answered on their reply subject, which must
// be an inbox.
func (s *Service) reply(op string, m *nats.Msg, b []byte) {
	if key := requester(m); key != "" {
		to := ""
		if m.Header != nil {
			to = m.Header.Get(ReplyHeader)
		}
		prefix, ok := inboxOf(key)
		if !ok || !strings.HasPrefix(to, prefix) || strings.ContainsAny(to, "*> \t\r\n") {
			if n, ok := s.dropped.Allow("reply"); ok {
				s.log.Warn("reply_refused", "op", op, "key", key, "to", to, "suppressed", n)
			}
			return
		}
		if err := s.nc.Publish(to, b); err != nil {
			s.log.Warn("respond_failed", "op", op, "err", err)
		}
		return
	}
	if m.Reply == "" {
		return
	}
	if !replySubject(m.Reply) {
		// Answer only on an inbox: never on a subject of the grid's own
		// (its buckets, streams or services), whoever asks.
		s.log.Warn("reply_refused", "op", op, "reply", m.Reply)
		return
	}
	if err := m.Respond(b); err != nil {
		s.log.Warn("respond_failed", "op", op, "err", err)
	}
}

// replySubject reports whether the service may answer on reply: a NATS
// inbox, or the one-time reply subject the server maps a twin's request
// to ("_R_." in the grid's account).
func replySubject(reply string) bool {
	return strings.HasPrefix(reply, "_INBOX.") || strings.HasPrefix(reply, "_R_.")
}

// handle checks a request and runs its handler.
func (s *Service) handle(ctx context.Context, h handler, op string, data []byte) (any, error) {
	if len(data) > MaxRequestSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxRequestSize)
	}
	if !isWrite(op) {
		if len(data) == 0 {
			data = []byte("{}")
		}
		return h(ctx, nil, data)
	}
	var r signedRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: malformed request: %v", ErrInvalid, err)
	}
	// Records keep the payload as signed, and JSON encoding compacts and
	// escapes raw messages: accept only payloads already in that form.
	if len(r.Payload) > 0 {
		if b, err := json.Marshal(r.Payload); err != nil || !bytes.Equal(b, r.Payload) {
			return nil, fmt.Errorf("%w: payload must be compact JSON (as encoding/json writes it)", ErrInvalid)
		}
	}
	if r.Op != op {
		return nil, fmt.Errorf("%w: request signed for %q sent to %q", ErrInvalid, r.Op, op)
	}
	now := s.cfg.Now()
	ts := time.Unix(0, r.Timestamp)
	if d := ts.Sub(now); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		return nil, fmt.Errorf("%w: %s", ErrExpired, skewMessage(ts, d, "grid", s.cfg.MaxSkew))
	}
	pub, err := r.verify()
	if err != nil {
		return nil, err
	}
	if s.cfg.Store != nil {
		// Before anything is written, the nonce included: a full store
		// would take the whole timeout to fail.
		if err := s.cfg.Store.CheckStore(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrStoreFull, err)
		}
	}
	keyHex := hex.EncodeToString(pub)
	if err := s.st.useNonce(ctx, keyHex, r.Nonce); err != nil {
		return nil, err
	}
	if len(r.Payload) == 0 {
		r.Payload = []byte("{}")
	}
	r.Key = keyHex
	return h(ctx, &r, r.Payload)
}

// decoded makes a handler of f, which takes its payload decoded into a
// Req (ErrInvalid when it does not decode).
func decoded[Req any](f func(ctx context.Context, w *signedRequest, req Req) (any, error)) handler {
	return func(ctx context.Context, w *signedRequest, payload json.RawMessage) (any, error) {
		var req Req
		if err := decode(payload, &req); err != nil {
			return nil, err
		}
		return f(ctx, w, req)
	}
}

// decode decodes a payload strictly.
func decode(payload json.RawMessage, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: malformed payload: %v", ErrInvalid, err)
	}
	return nil
}

// signerTwin returns the twin of a signing key.
func (s *Service) signerTwin(ctx context.Context, keyHex string) (Twin, error) {
	t, err := s.twinByKey(ctx, keyHex)
	if errors.Is(err, ErrNotFound) {
		return Twin{}, fmt.Errorf("%w: key %s has no twin (create one first)", ErrNoTwin, keyHex)
	}
	return t, err
}

// publish sends an event on the node's subject (kept in the stream). A
// failure is logged: the write it follows is already committed, and nodes
// resync their contracts periodically.
func (s *Service) publish(ctx context.Context, kind string, node uint32, c *Contract) {
	s.publishEvent(ctx, Event{Kind: kind, NodeID: node, Contract: c})
}

// publishEvent is publish of a whole event (its time set here).
func (s *Service) publishEvent(ctx context.Context, ev Event) {
	ev.Time = s.cfg.Now().UTC()
	b, err := json.Marshal(ev)
	if err == nil {
		_, err = s.st.js.Publish(ctx, fmt.Sprintf(eventSubjectFmt, ev.NodeID), b)
	}
	if err != nil {
		s.log.Error("event_publish_failed", "kind", ev.Kind, "node_id", ev.NodeID, "err", err)
	}
}

// skewMessage names a clock skew: the request's time is d ahead of
// (behind, when negative) whose clock.
func skewMessage(ts time.Time, d time.Duration, whose string, allowed time.Duration) string {
	dir := "ahead of"
	if d < 0 {
		dir, d = "behind", -d
	}
	return fmt.Sprintf("clock skew: request time %s is %s %s the %s's clock (allowed ±%s)",
		ts.UTC().Format(time.RFC3339), d.Round(time.Second), dir, whose, allowed)
}
