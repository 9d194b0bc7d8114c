package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestRunOnDebianNATSServer runs zgrid --nats against Debian's nats-server.
func TestRunOnDebianNATSServer(t *testing.T) {
	bin := testutil.RequireBinary(t, "nats-server")
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testutil.StartListening(t, addr, bin, "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", t.TempDir())
	url := "nats://" + addr

	gridtest.Start(t, gridd.Config{DataDir: t.TempDir(), NATS: []string{url}, Replicas: 1, Auth: true})
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
