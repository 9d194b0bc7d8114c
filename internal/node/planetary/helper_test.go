package planetary

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
)

// helperEnv makes the test binary act as a yggdrasil node (TestMain): the
// root tests start it inside a network namespace, so that every socket the
// library opens and its TUN belong to that namespace.
const helperEnv = "ZOS_PLANETARY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper runs Run (what `zos planetary` runs) with a TUN named ygg0 until
// stdin closes.
func helper() int {
	cfg := Config{DataDir: os.Getenv("YGG_DIR")}
	if p := os.Getenv("YGG_PEER"); p != "" {
		cfg.Peers = []string{p}
	}
	if l := os.Getenv("YGG_LISTEN"); l != "" {
		cfg.Listen = []string{l}
	}
	ctx, stop := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := Run(ctx, cfg, "ygg0", os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// yggNode is a helper process running in a namespace.
type yggNode struct {
	Addr   netip.Addr
	Subnet netip.Prefix
}

// startNode starts the helper in ns (env: YGG_PEER / YGG_LISTEN) and stops
// it in t.Cleanup, checking that it ends.
func startNode(t *testing.T, ns string, env ...string) yggNode {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"=1", "YGG_DIR="+t.TempDir())...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Start(ns, cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("yggdrasil helper in %s did not stop when asked; killed", ns)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("yggdrasil helper in %s: %v", ns, err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("yggdrasil helper in %s said %q", ns, line)
	}
	return yggNode{Addr: netip.MustParseAddr(f[0]), Subnet: netip.MustParsePrefix(f[1])}
}
