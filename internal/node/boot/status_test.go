package boot

import (
	"context"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/node/update"
)

func TestUpdateResult(t *testing.T) {
	tests := []struct {
		name string
		st   update.State
		want string
	}{
		{"never updated", update.State{}, "none yet"},
		{"updated", update.State{Current: "v2", Previous: "v1"}, "updated to v2"},
		{"trial under way", update.State{Current: "v2", Trying: "v3"}, "trying v3"},
		{"rolled back", update.State{Current: "v2", Failed: []string{"v1.5", "v3"}}, "v3 failed, back on v2"},
		{"rolled back to the booted binary", update.State{Failed: []string{"v3"}}, "v3 failed, back on the booted version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UpdateResult(tt.st); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRenderVersionChannelUpdate: the console shows the version the node
// child runs (over init's after a live update), its channel and the last
// update's result, also on the machine-readable line.
func TestRenderVersionChannelUpdate(t *testing.T) {
	tests := []struct {
		name  string
		s     Screen
		wants []string
	}{
		{"no self-update", Screen{Version: "v1", NodeUp: true, Node: NodeStatus{State: "registered", NodeID: 5}},
			[]string{"version:   v1    channel: -    update: off", "state=registered listening= version=v1 channel=-"}},
		{"live updated and a later one rolled back", Screen{Version: "v1", NodeUp: true,
			Node: NodeStatus{State: "registered", NodeID: 5, Version: "v2", Channel: "testing", Update: "v3 failed, back on v2"}},
			[]string{"version:   v2    channel: testing    update: v3 failed, back on v2", "version=v2 channel=testing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.s.Render()
			for _, w := range tt.wants {
				if !strings.Contains(out, w) {
					t.Errorf("screen lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// farmHost is a node whose farm follows ch.
type farmHost struct{ ch string }

func (farmHost) Healthy() error                                { return nil }
func (farmHost) NodeID() uint32                                { return 1 }
func (farmHost) FarmID() uint32                                { return 1 }
func (h farmHost) FarmChannel(context.Context) (string, error) { return h.ch, nil }

// runOnce is an update module that returns at once.
type runOnce struct{}

func (runOnce) Run(context.Context, interface {
	Healthy() error
	NodeID() uint32
	FarmID() uint32
	FarmChannel(ctx context.Context) (string, error)
}) error {
	return nil
}
func (runOnce) Failed() []string { return nil }

// TestUpdateViewChannel: the console shows the farm's channel once the
// update module runs, the node's own before and when the farm chose none.
func TestUpdateViewChannel(t *testing.T) {
	ctx := context.Background()
	u := &updateView{Updater: runOnce{}, fallback: "production"}
	if got := u.channel(ctx); got != "production" {
		t.Fatalf("before Run: got %q, want production", got)
	}
	u.Run(ctx, farmHost{ch: "testing"})
	if got := u.channel(ctx); got != "testing" {
		t.Fatalf("farm on testing: got %q, want testing", got)
	}
	v := &updateView{Updater: runOnce{}, fallback: "production"}
	v.Run(ctx, farmHost{})
	if got := v.channel(ctx); got != "production" {
		t.Fatalf("farm without a channel: got %q, want production", got)
	}
}
