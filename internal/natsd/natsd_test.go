package natsd

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestStartServesJetStream(t *testing.T) {
	s, err := Start(Config{StoreDir: t.TempDir(), Port: RandomPort, HTTPPort: RandomPort}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("jetstream account info: %v", err)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/healthz", s.MonitorAddr()))
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("monitor /healthz: got %s", resp.Status)
	}
	s.Shutdown()
	s.Shutdown() // idempotent
	if c, err := nats.Connect(s.ClientURL(), nats.NoReconnect()); err == nil {
		c.Close()
		t.Fatal("server accepts connections after shutdown")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{StoreDir: "/x"}, true},
		{"no store", Config{}, false},
		{"bad port", Config{StoreDir: "/x", Port: 70000}, false},
		{"routes without cluster port", Config{StoreDir: "/x", Routes: []string{"nats-route://127.0.0.1:1"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate: got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
