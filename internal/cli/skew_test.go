package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runEnv runs zosctl with the given environment.
func runEnv(env map[string]string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return out.String(), errb.String(), code
}

// A zosctl whose clock is 10 minutes ahead ($ZOSCTL_CLOCK_OFFSET) has its
// writes refused by the grid with an error naming the clock skew; with the
// true clock the same write goes through; a bad offset is a clear error.
func TestClockSkewNamedByGrid(t *testing.T) {
	grid := startGrid(t)
	home, _ := newHome(t, grid)
	tests := []struct {
		name     string
		offset   string
		wantCode int
		want     string // in stderr
	}{
		{"ten minutes ahead", "10m", 1, "clock skew: request time"},
		{"ten minutes behind", "-10m", 1, "is 10m0s behind the grid's clock"},
		{"bad offset", "soon", 1, ClockOffsetEnv + `="soon": want a duration`},
		{"true clock", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"ZOSCTL_HOME": home, "ZOS_GRID": grid, ClockOffsetEnv: tt.offset}
			_, errs, code := runEnv(env, "farm", "create", "skewfarm"+strings.ReplaceAll(tt.offset, "-", "m"))
			if code != tt.wantCode || !strings.Contains(errs, tt.want) {
				t.Fatalf("got exit %d %q, want exit %d containing %q", code, errs, tt.wantCode, tt.want)
			}
			if tt.offset == "10m" && !strings.Contains(errs, "ahead of the grid's clock") {
				t.Errorf("got %q, want the skew named as ahead of the grid's clock", errs)
			}
		})
	}
}
