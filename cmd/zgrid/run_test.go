package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// startZgrid runs zgrid in-process on random loopback ports, explorer
// included, until cleanup.
func startZgrid(t *testing.T) gridd.Addrs {
	t.Helper()
	cfg := gridtest.Loopback(t)
	cfg.HTTPPort = natsd.RandomPort
	return gridtest.Start(t, cfg)
}

func TestRunServesRegistryAndExplorer(t *testing.T) {
	a := startZgrid(t)
	ctx := context.Background()
	k, _ := identity.Generate()
	connectAs := func() *nats.Conn {
		nc, err := rmb.Connect(a.NATS, k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	tw, err := registry.NewClient(connectAs(), k).CreateTwin(ctx, "")
	if err != nil {
		t.Fatalf("CreateTwin as a new key: %v", err)
	}
	// A new connection carries the twin's rights once the registry knows it.
	var farm registry.Farm
	_ = testutil.Poll(5*time.Second, func() (bool, error) {
		farm, err = registry.NewClient(connectAs(), k).CreateFarm(ctx, "f1")
		return err == nil, err
	})
	if err != nil || farm.TwinID != tw.ID {
		t.Fatalf("CreateFarm: got %+v, %v", farm, err)
	}

	// Without a key the server refuses the connection.
	if nc, err := nats.Connect(a.NATS); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}

	// The explorer shows the farm.
	testutil.Eventually(t, 20*time.Second, "the farm on explorer /farms", func() (bool, error) {
		resp, err := http.Get("http://" + a.Explorer + "/farms")
		if err != nil {
			return false, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"f1"`) {
			return true, nil
		}
		return false, errors.New(resp.Status + " " + string(b))
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", []string{"--data", "/tmp/x"}, true},
		{"no data", nil, false},
		{"replicas", []string{"--data", "d", "--replicas", "0"}, false},
		{"nats and routes", []string{"--data", "d", "--nats", "nats://a:4222", "--cluster-port", "6222"}, false},
		{"routes without port", []string{"--data", "d", "--routes", "nats-route://a:6222"}, false},
		{"bad listen", []string{"--data", "d", "--listen", "localhost"}, false},
		{"no auth on loopback", []string{"--data", "d", "--auth=false"}, true},
		{"no auth off loopback", []string{"--data", "d", "--auth=false", "--listen", "0.0.0.0"}, false},
		{"billing", []string{"--data", "d", "--treasury-twins", "1, 7", "--billing-period", "10s", "--grace-period", "1h"}, true},
		{"bad treasury twin", []string{"--data", "d", "--treasury-twins", "0"}, false},
		{"negative billing period", []string{"--data", "d", "--billing-period", "-1s"}, false},
		{"cluster", []string{"--data", "d", "--replicas", "3", "--cluster-port", "6222", "--routes", "nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if (err == nil) != tt.ok {
				t.Fatalf("parseFlags(%q): got error %v, want ok=%v", tt.args, err, tt.ok)
			}
		})
	}
}
