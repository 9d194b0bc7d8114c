package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Names of the KV buckets and the events stream.
const (
	bucketTwins     = "zos_twins"
	bucketFarms     = "zos_farms"
	bucketNodes     = "zos_nodes"
	bucketContracts = "zos_contracts"
	// bucketIndex holds counters and unique indexes:
	// counter.<kind>, twinkey.<hex>, nodetwin.<twin>, name.<name>,
	// farmname.<name>, rent.<node>.
	bucketIndex = "zos_index"
	// bucketNonces holds the nonces of recent writes; entries expire.
	bucketNonces = "zos_nonces"
	// Billing (ledger.go, ops_billing.go): each twin's account (balance
	// and last entry), the append-only ledger entries (<twin>.<seq>),
	// each contract's billing record, and its bills (<contract>.<seq>).
	bucketAccounts = "zos_accounts"
	bucketLedger   = "zos_ledger"
	bucketBilling  = "zos_billing"
	bucketBills    = "zos_bills"
	// EventsStream keeps the events of every node.
	EventsStream = "ZOS_EVENTS"
)

// casRetries bounds compare-and-set loops.
const casRetries = 100

// store is the registry's state in JetStream.
type store struct {
	js        jetstream.JetStream
	twins     jetstream.KeyValue
	farms     jetstream.KeyValue
	nodes     jetstream.KeyValue
	contracts jetstream.KeyValue
	index     jetstream.KeyValue
	nonces    jetstream.KeyValue
	accounts  jetstream.KeyValue
	ledger    jetstream.KeyValue
	billing   jetstream.KeyValue
	bills     jetstream.KeyValue
	events    jetstream.Stream
}

// openStore creates (or opens) the buckets and the stream. In a fresh
// cluster JetStream needs a few seconds to elect a leader, so it retries
// until ctx ends.
func openStore(ctx context.Context, js jetstream.JetStream, replicas int, nonceTTL time.Duration, log *slog.Logger) (*store, error) {
	if replicas <= 0 {
		replicas = 1
	}
	s := &store{js: js}
	buckets := []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&s.twins, jetstream.KeyValueConfig{Bucket: bucketTwins}},
		{&s.farms, jetstream.KeyValueConfig{Bucket: bucketFarms}},
		{&s.nodes, jetstream.KeyValueConfig{Bucket: bucketNodes}},
		{&s.contracts, jetstream.KeyValueConfig{Bucket: bucketContracts}},
		{&s.index, jetstream.KeyValueConfig{Bucket: bucketIndex}},
		{&s.nonces, jetstream.KeyValueConfig{Bucket: bucketNonces, TTL: nonceTTL}},
		{&s.accounts, jetstream.KeyValueConfig{Bucket: bucketAccounts}},
		{&s.ledger, jetstream.KeyValueConfig{Bucket: bucketLedger}},
		{&s.billing, jetstream.KeyValueConfig{Bucket: bucketBilling}},
		{&s.bills, jetstream.KeyValueConfig{Bucket: bucketBills}},
	}
	// Created in parallel: in a fresh cluster each replicated stream
	// waits for its own leader election.
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range buckets {
		b.cfg.Replicas = replicas
		b.cfg.Storage = jetstream.FileStorage
		b.cfg.MaxValueSize = MaxRequestSize * 4
		g.Go(func() error {
			err := retry(gctx, log, func(ctx context.Context) error {
				kv, err := js.CreateOrUpdateKeyValue(ctx, b.cfg)
				if err != nil {
					return err
				}
				*b.kv = kv
				return nil
			})
			if err != nil {
				return fmt.Errorf("opening bucket %s: %w", b.cfg.Bucket, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		err := retry(gctx, log, func(ctx context.Context) error {
			st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:     EventsStream,
				Subjects: []string{SubjectPrefix + "events.node.*"},
				Storage:  jetstream.FileStorage,
				Replicas: replicas,
				MaxAge:   30 * 24 * time.Hour,
			})
			if err != nil {
				return err
			}
			s.events = st
			return nil
		})
		if err != nil {
			return fmt.Errorf("opening stream %s: %w", EventsStream, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return s, nil
}

// retry calls f (each try bounded to 5 s) until it succeeds or ctx ends.
func retry(ctx context.Context, log *slog.Logger, f func(context.Context) error) error {
	var last error
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = f(tctx)
		cancel()
		if last == nil {
			return nil
		}
		log.Debug("jetstream_not_ready", "err", last)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func idKey(id uint64) string { return strconv.FormatUint(id, 10) }

// getByID reads record id of kv; a missing one is ErrNotFound naming what
// and id.
func getByID[T any](ctx context.Context, kv jetstream.KeyValue, what string, id uint64) (T, error) {
	var v T
	if _, err := getJSON(ctx, kv, idKey(id), &v); err != nil {
		var zero T
		if errors.Is(err, ErrNotFound) {
			return zero, fmt.Errorf("%w: %s %d", ErrNotFound, what, id)
		}
		return zero, err
	}
	return v, nil
}

// getJSON reads key of kv into v and returns its revision; ErrNotFound when
// absent.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("%w: decoding %s/%s: %v", ErrInternal, kv.Bucket(), key, err)
	}
	return e.Revision(), nil
}

// putJSON writes v at key: created when rev is 0 (ErrExists if present),
// else compare-and-set against rev (errConflict if it moved).
func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", kv.Bucket(), key, err)
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, b)
	} else {
		_, err = kv.Update(ctx, key, b, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return errConflict
	case errors.Is(err, jetstream.ErrKeyExists):
		if rev == 0 {
			return ErrExists
		}
		return errConflict
	case err != nil:
		return fmt.Errorf("writing %s/%s: %w", kv.Bucket(), key, err)
	}
	return nil
}

// errConflict is a lost compare-and-set: read again and retry.
var errConflict = fmt.Errorf("%w: compare-and-set lost", ErrConflict)

// update applies f to the record at key under compare-and-set, retrying
// when another writer got there first. f may return an error to abort.
func update[T any](ctx context.Context, kv jetstream.KeyValue, key string, f func(*T) error) (T, error) {
	var zero T
	for i := range casRetries {
		var v T
		rev, err := getJSON(ctx, kv, key, &v)
		if err != nil {
			return zero, err
		}
		if err := f(&v); err != nil {
			return zero, err
		}
		err = putJSON(ctx, kv, key, rev, &v)
		if errors.Is(err, errConflict) {
			backoff(i)
			continue
		}
		if err != nil {
			return zero, err
		}
		return v, nil
	}
	return zero, errConflict
}

// backoff sleeps a little, randomly, after the try-th lost
// compare-and-set, so that contending writers spread out.
func backoff(try int) {
	d := time.Duration(min(try+1, 20)) * 200 * time.Microsecond
	time.Sleep(rand.N(d) + d/2)
}

// nextID increments the counter of kind and returns its new value.
func (s *store) nextID(ctx context.Context, kind string) (uint64, error) {
	key := "counter." + kind
	for i := range casRetries {
		e, err := s.index.Get(ctx, key)
		var cur, rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("reading counter %s: %w", kind, err)
		default:
			rev = e.Revision()
			if cur, err = strconv.ParseUint(string(e.Value()), 10, 64); err != nil {
				return 0, fmt.Errorf("%w: counter %s is %q", ErrInternal, kind, e.Value())
			}
		}
		next := cur + 1
		val := []byte(strconv.FormatUint(next, 10))
		if rev == 0 {
			_, err = s.index.Create(ctx, key, val)
		} else {
			_, err = s.index.Update(ctx, key, val, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			backoff(i)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("incrementing counter %s: %w", kind, err)
		}
		return next, nil
	}
	return 0, fmt.Errorf("allocating %s id: %w", kind, errConflict)
}

// indexGet reads an index entry (an id).
func (s *store) indexGet(ctx context.Context, key string) (uint64, error) {
	e, err := s.index.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("reading index %s: %w", key, err)
	}
	id, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: index %s is %q", ErrInternal, key, e.Value())
	}
	return id, nil
}

// indexCreate claims an index entry; ErrExists when taken.
func (s *store) indexCreate(ctx context.Context, key string, id uint64) error {
	_, err := s.index.Create(ctx, key, []byte(idKey(id)))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("writing index %s: %w", key, err)
	}
	return nil
}

// indexDelete releases an index entry.
func (s *store) indexDelete(ctx context.Context, key string) error {
	if err := s.index.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("deleting index %s: %w", key, err)
	}
	return nil
}

// useNonce records a nonce of a key; ErrReplay if it was seen.
func (s *store) useNonce(ctx context.Context, keyHex, nonce string) error {
	_, err := s.nonces.Create(ctx, keyHex+"_"+nonce, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: nonce %s already used", ErrReplay, nonce)
	}
	if err != nil {
		return fmt.Errorf("recording nonce: %w", err)
	}
	return nil
}

// list reads every record of kv (the latest value per key) and returns
// those with id > after that keep passes, in id order.
func list[T any](ctx context.Context, kv jetstream.KeyValue, after uint64, id func(*T) uint64, keep func(*T) bool) ([]T, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", kv.Bucket(), err)
	}
	defer w.Stop()
	var out []T
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listing %s: %w", kv.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("listing %s: watcher closed", kv.Bucket())
			}
			if e == nil { // initial values done
				sort.Slice(out, func(i, j int) bool { return id(&out[i]) < id(&out[j]) })
				return out, nil
			}
			var v T
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				continue
			}
			if id(&v) > after && (keep == nil || keep(&v)) {
				out = append(out, v)
			}
		}
	}
}
