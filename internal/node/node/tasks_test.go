package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// journal records what the tasks, closers and services did, as lines.
type journal struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf(format, a...))
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.lines...)
}

// opens is a task that opens name (closed at teardown) and, when serves,
// serves it until ctx ends.
func opens(j *journal, name string, serves bool) task {
	return task{name, func(_ context.Context, r *runner) error {
		j.add("start %s", name)
		r.onStop(name, func() error { j.add("close %s", name); return nil })
		if serves {
			r.serve(name, func(ctx context.Context) error {
				<-ctx.Done()
				j.add("served %s", name)
				return nil
			})
		}
		return nil
	}}
}

func fails(j *journal, name string) task {
	return task{name, func(context.Context, *runner) error {
		j.add("start %s", name)
		return errors.New("no disk")
	}}
}

func TestRunnerTeardown(t *testing.T) {
	tests := []struct {
		name    string
		tasks   func(j *journal) []task
		cancel  bool // end ctx once running
		want    []string
		wantErr string
	}{
		{
			name: "stop: services end, then closers in reverse",
			tasks: func(j *journal) []task {
				return []task{opens(j, "a", false), opens(j, "b", true), opens(j, "c", false)}
			},
			cancel: true,
			want:   []string{"start a", "start b", "start c", "served b", "close c", "close b", "close a"},
		},
		{
			name: "a task fails: what started is closed, nothing served",
			tasks: func(j *journal) []task {
				return []task{opens(j, "a", true), opens(j, "b", false), fails(j, "c"), opens(j, "d", false)}
			},
			want:    []string{"start a", "start b", "start c", "close b", "close a"},
			wantErr: "starting c: no disk",
		},
		{
			name: "a service fails: the others stop, then the closers",
			tasks: func(j *journal) []task {
				return []task{opens(j, "a", true), {"b", func(_ context.Context, r *runner) error {
					j.add("start b")
					r.onStop("b", func() error { j.add("close b"); return errors.New("busy") })
					r.serve("b", func(context.Context) error { return errors.New("crashed") })
					return nil
				}}}
			},
			want:    []string{"start a", "start b", "served a", "close b", "close a"},
			wantErr: "b: crashed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			var logs testutil.Buffer
			r := &runner{log: slog.New(slog.NewTextHandler(&logs, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.run(ctx, tt.tasks(j)) }()
			if tt.cancel {
				_ = testutil.Poll(5*time.Second, func() (bool, error) { return len(j.get()) >= 3, nil })
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("run did not return; journal %v", j.get())
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			if got := j.get(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// Each closer once: stopping again does nothing.
			r.stop()
			if got := j.get(); len(got) != len(tt.want) {
				t.Fatalf("got %v after a second stop, want no more closes", got)
			}
		})
	}
}

// TestRunnerLogsCloseErrors: a closer's error is logged, the ones below
// it still run.
func TestRunnerLogsCloseErrors(t *testing.T) {
	j := &journal{}
	var logs testutil.Buffer
	r := &runner{log: slog.New(slog.NewTextHandler(&logs, nil))}
	r.onStop("a", func() error { j.add("close a"); return nil })
	r.onStop("b", func() error { return errors.New("busy") })
	r.stop()
	if got := j.get(); !reflect.DeepEqual(got, []string{"close a"}) {
		t.Fatalf("got %v, want a closed", got)
	}
	if !strings.Contains(logs.String(), "stop_failed task=b err=busy") {
		t.Fatalf("got logs %q, want b's error", logs.String())
	}
}

// TestLoopRestartsAndReports: a failing loop is restarted and its state
// reaches the status sink and the diagnostics (zos.system.diagnostics).
func TestLoopRestartsAndReports(t *testing.T) {
	sink := &recordSink{}
	var logs testutil.Buffer
	n := &Node{cfg: Config{Status: sink}, log: slog.New(slog.NewTextHandler(&logs, nil)), modules: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() {
		done <- n.loop(ctx, "events", func(context.Context) error {
			runs <- struct{}{}
			return errors.New("event stream closed")
		})
	}()
	<-runs
	testutil.Eventually(t, 5*time.Second, "the loop's error as its state", func() (bool, error) {
		n.mu.Lock()
		state := n.modules["events"]
		n.mu.Unlock()
		return state == "event stream closed", fmt.Errorf("got state %q, want the loop's error", state)
	})
	select {
	case <-runs: // restarted after a second
	case <-time.After(5 * time.Second):
		t.Fatal("the loop was not restarted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("got %v, want nil at the end of ctx", err)
	}
	if !strings.Contains(logs.String(), "msg=module_failed module=events") {
		t.Errorf("got logs %q, want module_failed", logs.String())
	}
	got := sink.get()
	if len(got) < 3 || got[0] != "events=ok" || got[1] != "events=event stream closed" || got[2] != "events=ok" {
		t.Errorf("got sink %v, want ok, the error, ok again on restart", got)
	}
}

type recordSink struct {
	mu     sync.Mutex // guards states
	states []string
}

func (s *recordSink) ModuleStatus(module, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, module+"="+state)
}

func (s *recordSink) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.states...)
}
