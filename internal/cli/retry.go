package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// Waiting through faults. Every request zosctl sends has its own short
// deadline (registry.DefaultTimeout, nodeCallTimeout); a command that
// waits for something (deploy, update, cancel) asks again after a
// transient error, with backoff, until its --timeout, and then says what it
// knows rather than only that time ran out.

// nodeCallTimeout bounds one call to a node: a status poll sent while the
// node or the grid is away fails after it and is asked again.
const nodeCallTimeout = 20 * time.Second

// connectPatience is how long a waiting command tries to reach a grid
// that does not answer when it starts (a grid restarting comes back in
// seconds; a wrong --grid never does).
const connectPatience = 30 * time.Second

// Backoff between attempts after transient errors.
const (
	retryFirst = 250 * time.Millisecond
	retryMax   = 5 * time.Second
)

// transient reports whether err may go away by asking again: nobody
// answers (the node or the registry restarting), no answer in time, the
// connection to the grid down or reconnecting, a busy receiver. Anything
// else (a refusal, a bad request, a clock skew, a failed workload) is
// permanent. It is the one place that decides.
func transient(err error) bool {
	if err == nil {
		return false
	}
	for _, t := range []error{
		rmb.ErrUnreachable, rmb.ErrTimeout, rmb.ErrBusy,
		registry.ErrTimeout, registry.ErrBusy, registry.ErrConflict,
		nats.ErrNoResponders, nats.ErrTimeout, nats.ErrConnectionReconnecting,
		nats.ErrDisconnected, nats.ErrConnectionClosed, nats.ErrStaleConnection,
		nats.ErrNoServers, syscall.ECONNREFUSED, syscall.ECONNRESET,
		context.DeadlineExceeded,
	} {
		if errors.Is(err, t) {
			return true
		}
	}
	// A node that could not reach the registry itself (the grid
	// restarting) says so in its error's text: the code is only "handler
	// error".
	var re *rmb.RemoteError
	if errors.As(err, &re) && re.Code == rmb.CodeHandler {
		for _, s := range []string{registry.ErrTimeout.Error(), "no registry service answers", "not connected to the grid", nats.ErrNoResponders.Error()} {
			if strings.Contains(re.Message, s) {
				return true
			}
		}
	}
	return false
}

// backoff returns the pause after the n-th consecutive transient error
// (n from 1).
func backoff(n int) time.Duration {
	d := retryFirst
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// retrier asks again after transient errors until its context ends,
// telling the user once per outage what it waits for.
type retrier struct {
	env    *Env
	quiet  bool   // --json: no progress lines
	what   string // what is retried: "waiting for node 1", "creating the contract"
	fails  int    // consecutive transient errors
	last   error  // the last transient error
	total  int    // transient errors in all
	silent bool   // the current outage was announced
}

// failed records a transient error and waits before the next attempt. It
// returns false when ctx ended first.
func (r *retrier) failed(ctx context.Context, err error) bool {
	r.fails++
	r.total++
	r.last = err
	if !r.silent {
		progress(r.env, r.quiet, "%s: %v; asking again until the timeout\n", r.what, err)
		r.silent = true
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(backoff(r.fails)):
		return true
	}
}

// ok records a success after errors.
func (r *retrier) ok() {
	if r.silent {
		progress(r.env, r.quiet, "%s: answered again\n", r.what)
	}
	r.fails, r.silent = 0, false
}

// do calls fn until it succeeds, fails permanently or ctx ends (then the
// last error, transient, joined with the context's).
func (r *retrier) do(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			r.ok()
			return nil
		}
		if !transient(err) || ctx.Err() != nil {
			return err
		}
		if !r.failed(ctx, err) {
			return fmt.Errorf("%w (after %d attempts: %w)", err, r.fails, ctx.Err())
		}
	}
}

// alreadyDone reports whether a node refused a request because it already
// has what the request asked (a resent deploy the first attempt delivered).
func alreadyDone(err error) bool {
	return err != nil && strings.Contains(err.Error(), "deployment already exists")
}

// openSessionWaiting is openSession for the commands that wait (deploy,
// update, cancel): a grid that is down or restarting when they start is
// tried again for up to connectPatience.
func openSessionWaiting(ctx context.Context, env *Env, f gridFlags) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, connectPatience)
	defer cancel()
	r := &retrier{env: env, quiet: *f.json, what: "connecting to the grid"}
	var s *session
	err := r.do(ctx, func() (err error) {
		s, err = openSession(ctx, f, true)
		return err
	})
	return s, err
}
