package main

import (
	"context"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// TestReadyMeansServing sends a request from Ready itself, without
// retrying: the registry must already answer it (before, Ready fired once
// the tasks had started, and a first request could meet "no responders").
func TestReadyMeansServing(t *testing.T) {
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		answered := make(chan error, 1)
		cfg := gridd.Config{DataDir: t.TempDir(), Listen: "127.0.0.1", Port: natsd.RandomPort, Replicas: 1, Auth: true,
			Ready: func(a gridd.Addrs) {
				nc, err := rmb.Connect(a.NATS, k)
				if err != nil {
					answered <- err
					return
				}
				defer nc.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = registry.NewClient(nc, k).CreateTwin(ctx, "")
				answered <- err
			}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- gridd.Run(ctx, cfg, testutil.Logger(t)) }()
		select {
		case err := <-answered:
			if err != nil {
				t.Errorf("start %d: first request from Ready: got %v, want an answer", i, err)
			}
		case err := <-done:
			t.Fatalf("start %d: zgrid stopped: %v", i, err)
		case <-time.After(60 * time.Second):
			t.Fatalf("start %d: zgrid not ready", i)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("start %d: zgrid run: %v", i, err)
		}
	}
}
