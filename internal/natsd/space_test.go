package natsd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zos-go/zos/internal/testutil"
)

func TestDefaultReserve(t *testing.T) {
	for _, tt := range []struct {
		name       string
		size, want int64
	}{
		{"16 MiB tmpfs: 5%", 16 << 20, 16 << 20 * 5 / 100},
		{"1 GiB: 5%", 1 << 30, 1 << 30 * 5 / 100},
		{"100 GiB: 64 MiB", 100 << 30, 64 << 20},
		{"empty", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultReserve(tt.size); got != tt.want {
				t.Errorf("DefaultReserve(%d): got %d, want %d", tt.size, got, tt.want)
			}
		})
	}
}

func TestStoreErrorSaysWhy(t *testing.T) {
	for _, tt := range []struct {
		name string
		sp   Space
		want string
	}{
		{"under the reserve", Space{Free: 512 << 10, Reserve: 1 << 20}, "0.5 MiB free, reserve 1.0 MiB"},
		{"failed write", Space{Free: 8 << 20, Reserve: 1 << 20, Failed: "no space left on device"},
			"recovering from a failed write (no space left on device), 8.0 MiB free, reserve 1.0 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&StoreError{Space: tt.sp}).Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// storeOnTmpfs starts a server whose store is on a 16 MiB tmpfs, checking
// its space every 20 ms; logs go to the returned buffer.
func storeOnTmpfs(t *testing.T, reserve int64) (*Server, string, *testutil.Buffer) {
	t.Helper()
	dir := testutil.MountTmpfs(t, "16m")
	var logs testutil.Buffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, logWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := Start(Config{StoreDir: filepath.Join(dir, "store"), Port: RandomPort, StoreReserve: reserve,
		SpaceInterval: 20 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown) // before the unmount
	return s, dir, &logs
}

// logWriter shows the server's logs in the test's log when it fails.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	if os.Getenv("ZOS_TEST_LOG") == "1" {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// TestStoreReserveRefusesWrites fills the store's file system to under the
// default reserve: CheckStore refuses at once saying how much is free,
// store_low is logged once; with the filler gone CheckStore accepts again
// and store_ok is logged once.
func TestStoreReserveRefusesWrites(t *testing.T) {
	s, dir, logs := storeOnTmpfs(t, 0)
	if err := s.CheckStore(); err != nil {
		t.Fatalf("CheckStore on an empty store: got %v, want nil", err)
	}
	filler := testutil.FillFS(t, dir, 256<<10)
	var se *StoreError
	if err := s.CheckStore(); !errors.As(err, &se) || se.Space.Free >= se.Space.Reserve || se.Space.Reserve != DefaultReserve(se.Space.Size) {
		t.Fatalf("CheckStore under the reserve: got %v, want a StoreError with free under the default reserve", err)
	}
	testutil.Eventually(t, 5*time.Second, "store_low logged", func() (bool, error) {
		return strings.Contains(logs.String(), "store_low"), nil
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckStore(); err != nil {
		t.Fatalf("CheckStore with the filler gone: got %v, want nil", err)
	}
	testutil.Eventually(t, 5*time.Second, "store_ok logged", func() (bool, error) {
		return strings.Contains(logs.String(), "store_ok"), nil
	})
	// Many checks later, each transition is still logged once.
	s.checkSpace()
	s.checkSpace()
	for _, msg := range []string{"msg=store_low", "msg=store_ok"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%s logged %d times, want once", msg, n)
		}
	}
}

// TestJetStreamRecoversAfterNoSpace runs without a reserve and fills the
// file system to the last byte, so that JetStream fails a write: it then
// acknowledges no write at all, even with room again, until restarted.
// CheckStore says so, reads still work, and once the filler is removed the
// watch restarts JetStream: writes work again and every acknowledged key
// is still there with its value.
func TestJetStreamRecoversAfterNoSpace(t *testing.T) {
	s, dir, logs := storeOnTmpfs(t, NoReserve)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "acked", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := kv.PutString(ctx, key, value)
		return err
	}
	acked := map[string]string{}
	for i := range 20 {
		k, v := fmt.Sprintf("k%d", i), strings.Repeat(fmt.Sprint(i), 100)
		if err := put(k, v, 5*time.Second); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		acked[k] = v
	}
	filler := testutil.FillFS(t, dir, 0)
	// A write big enough to need the space that is not there.
	if err := put("big", strings.Repeat("x", 64<<10), 2*time.Second); err == nil {
		t.Fatal("put on a full file system: got nil, want an error")
	}
	var se *StoreError
	testutil.Eventually(t, 5*time.Second, "CheckStore to report the failed write", func() (bool, error) {
		err := s.CheckStore()
		return errors.As(err, &se) && se.Space.Failed != "", err
	})
	checkAcked := func(when string) {
		t.Helper()
		for k, want := range acked {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			e, err := kv.Get(ctx, k)
			cancel()
			if err != nil {
				t.Fatalf("get %s %s: %v", k, when, err)
			}
			if got := string(e.Value()); got != want {
				t.Fatalf("get %s %s: got %q, want %q", k, when, got, want)
			}
		}
	}
	checkAcked("while full")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 15*time.Second, "a write to succeed with room again", func() (bool, error) {
		err := put("after", "ok", time.Second)
		return err == nil, err
	})
	t.Logf("writes work again %s after the filler went", time.Since(start).Round(time.Millisecond))
	if err := s.CheckStore(); err != nil {
		t.Errorf("CheckStore after recovery: got %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "jetstream_restarted") {
		t.Errorf("logs: no jetstream_restarted in\n%s", logs.String())
	}
	checkAcked("after recovery")
}

// TestJetStreamReenabledAfterServerStopsIt stops JetStream as the server
// does itself after a write error in a cluster (ShutdownJetStream): the
// store refuses writes while it is off, and the watch enables it again,
// with the streams and their messages.
func TestJetStreamReenabledAfterServerStopsIt(t *testing.T) {
	s, err := Start(Config{StoreDir: t.TempDir(), Port: RandomPort, SpaceInterval: 20 * time.Millisecond}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if err := s.NATS().ShutdownJetStream(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "jetstream enabled again", func() (bool, error) {
			return s.NATS().JetStreamEnabled() && s.CheckStore() == nil, s.CheckStore()
		})
		testutil.Eventually(t, 10*time.Second, "writes to work", func() (bool, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := kv.PutString(ctx, fmt.Sprint("after", round), "v")
			return err == nil, err
		})
		if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
			t.Fatalf("round %d: get k after the restart: got %v, want v", round, err)
		}
	}
}
