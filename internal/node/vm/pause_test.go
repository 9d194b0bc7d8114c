package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

// pingFrom sends one ICMP echo to addr from namespace ns and waits up to
// timeout for the reply.
func pingFrom(ns, addr string, seq int, timeout time.Duration) error {
	return netns.Do(ns, func() error {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		id := os.Getpid() & 0xffff
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("zos-pause")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		dst := &net.IPAddr{IP: net.ParseIP(addr)}
		if _, err := c.WriteTo(b, dst); err != nil {
			return err
		}
		deadline := time.Now().Add(timeout)
		buf := make([]byte, 1500)
		for {
			if err := c.SetReadDeadline(deadline); err != nil {
				return err
			}
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply || from.String() != addr {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
				return nil
			}
		}
	})
}

// checkPause pauses the running VM name, whose guest answers ping at addr
// from namespace ns: the same QEMU process is paused and answers no ping;
// resumed, it runs and answers again (issue 22: a contract's grace
// period).
func checkPause(ctx context.Context, t *testing.T, m *Manager, ns, name, addr string) {
	t.Helper()
	seq := 0
	ping := func(timeout time.Duration) error { seq++; return pingFrom(ns, addr, seq, timeout) }
	if err := testutil.Poll(20*time.Second, func() (bool, error) { return ping(time.Second) == nil, nil }); err != nil {
		t.Fatalf("the running VM answers no ping at %s: %v", addr, err)
	}
	before, err := m.Inspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(ctx, name); err != nil {
		t.Fatalf("pausing again: %v", err)
	}
	info, err := m.Inspect(ctx, name)
	if err != nil || info.Pid != before.Pid || info.Status != "paused" {
		t.Fatalf("paused: got %+v, %v; want pid %d paused", info, err, before.Pid)
	}
	var ne net.Error
	if err := ping(2 * time.Second); err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("paused: got ping %v, want no answer", err)
	}
	if err := m.Resume(ctx, name); err != nil {
		t.Fatal(err)
	}
	info, err = m.Inspect(ctx, name)
	if err != nil || info.Pid != before.Pid || info.Status != "running" {
		t.Fatalf("resumed: got %+v, %v; want pid %d running", info, err, before.Pid)
	}
	if err := testutil.Poll(20*time.Second, func() (bool, error) { return ping(time.Second) == nil, nil }); err != nil {
		t.Fatal(fmt.Errorf("resumed: the VM answers no ping: %w", err))
	}
}
