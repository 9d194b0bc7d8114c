package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestRunOnDebianNATSServer runs zgrid --nats against Debian's nats-server.
func TestRunOnDebianNATSServer(t *testing.T) {
	bin := testutil.RequireBinary(t, "nats-server")
	port := testutil.FreePort(t)
	sctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(sctx, bin, "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		stop()
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() { stop(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testutil.Eventually(t, 10*time.Second, "nats-server to listen on "+addr, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
	url := "nats://" + addr

	ready := make(chan Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{DataDir: t.TempDir(), NATS: []string{url}, Replicas: 1, Auth: true, Ready: func(a Addrs) { ready <- a }}
	go func() { done <- run(ctx, cfg, testutil.Logger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("zgrid: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("zgrid stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("zgrid not ready")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	k, _ := identity.Generate()
	c := registry.NewClient(nc, k)
	if _, err := c.CreateTwin(context.Background(), ""); err != nil {
		t.Fatalf("CreateTwin: %v", err)
	}
	f, err := c.CreateFarm(context.Background(), "debian")
	if err != nil || f.ID == 0 {
		t.Fatalf("CreateFarm: %+v, %v", f, err)
	}
}
