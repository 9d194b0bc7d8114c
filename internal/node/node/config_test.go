package node

import (
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
)

func TestConfigFarmToken(t *testing.T) {
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := registry.NewFarmToken(key, 5, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		farm     uint32
		token    string
		wantFarm uint32
		wantErr  string
	}{
		{"token names the farm", 0, tok.String(), 5, ""},
		{"token and its farm", 5, tok.String(), 5, ""},
		{"farm alone (a registered node)", 7, "", 7, ""},
		{"token of another farm", 7, tok.String(), 0, "for farm 5, not farm 7"},
		{"bad token", 0, "zft1_nope", 0, "farm token"},
		{"neither", 0, "", 0, "farm id or farm token is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{DataDir: "/data", Grid: "nats://127.0.0.1:4222", FarmID: tt.farm, FarmToken: tt.token}
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.FarmID != tt.wantFarm {
				t.Fatalf("got farm %d, error %v; want farm %d", c.FarmID, err, tt.wantFarm)
			}
		})
	}
}
