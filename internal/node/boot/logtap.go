package boot

import (
	"context"
	"log/slog"
	"sync"
)

// moduleTap is a slog handler that passes records on and remembers, per
// module, the last "module_failed" error and clears it on success lines:
// the console shows what is wrong before the node registers (a wrong
// grid=, a grid that is down).
type moduleTap struct {
	next  slog.Handler
	attrs []slog.Attr
	state *tapState
}

type tapState struct {
	mu      sync.Mutex        // guards modules
	modules map[string]string // module -> last error
}

func newModuleTap(next slog.Handler) *moduleTap {
	return &moduleTap{next: next, state: &tapState{modules: map[string]string{}}}
}

func (h *moduleTap) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *moduleTap) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "module_failed" {
		var module, msg string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "module":
				module = a.Value.String()
			case "err":
				msg = a.Value.String()
			}
			return true
		})
		if module != "" {
			h.state.mu.Lock()
			h.state.modules[module] = msg
			h.state.mu.Unlock()
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *moduleTap) WithAttrs(as []slog.Attr) slog.Handler {
	return &moduleTap{next: h.next.WithAttrs(as), attrs: append(append([]slog.Attr(nil), h.attrs...), as...), state: h.state}
}

func (h *moduleTap) WithGroup(name string) slog.Handler {
	return &moduleTap{next: h.next.WithGroup(name), attrs: h.attrs, state: h.state}
}

// failures returns a copy of the modules' last errors.
func (h *moduleTap) failures() map[string]string {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	out := make(map[string]string, len(h.state.modules))
	for k, v := range h.state.modules {
		out[k] = v
	}
	return out
}
