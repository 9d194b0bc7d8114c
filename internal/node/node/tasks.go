package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
)

// task is one named step of the node's start-up. start runs in order and
// may fail start-up; what it opens it pushes on the runner's closer stack
// (onStop), what it serves it hands to the runner (serve).
type task struct {
	name  string
	start func(ctx context.Context, r *runner) error
}

// runner starts tasks in order, then serves what they handed it under one
// errgroup, and finally undoes what they opened in reverse order: also
// when a task fails to start, each closer once.
type runner struct {
	log      *slog.Logger
	closers  []closer  // in start order; stop pops them
	services []service // started once every task has
}

type closer struct {
	name  string
	close func() error
}

type service struct {
	name string
	run  func(ctx context.Context) error
}

// onStop pushes f: it runs at teardown, after every service returned and
// before whatever was pushed earlier.
func (r *runner) onStop(name string, f func() error) {
	r.closers = append(r.closers, closer{name, f})
}

// serve runs f once every task has started, until ctx ends; an error of
// f stops the node (restarting loops wrap f in Node.loop).
func (r *runner) serve(name string, f func(ctx context.Context) error) {
	r.services = append(r.services, service{name, f})
}

// run starts tasks in order and serves until ctx ends or a service fails;
// it returns after the teardown. The end of ctx is not an error.
func (r *runner) run(ctx context.Context, tasks []task) error {
	defer r.stop()
	for _, t := range tasks {
		start := time.Now()
		if err := t.start(ctx, r); err != nil {
			return fmt.Errorf("starting %s: %w", t.name, err)
		}
		r.log.Debug("task_started", "task", t.name, "took", time.Since(start).Round(time.Millisecond))
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range r.services {
		g.Go(func() error {
			if err := s.run(gctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// stop runs the closers in reverse order, each once.
func (r *runner) stop() {
	for len(r.closers) > 0 {
		c := r.closers[len(r.closers)-1]
		r.closers = r.closers[:len(r.closers)-1]
		if err := c.close(); err != nil && !errors.Is(err, net.ErrClosed) {
			r.log.Warn("stop_failed", "task", c.name, "err", err)
		}
	}
}
