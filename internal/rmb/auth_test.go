package rmb

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// expectViolation waits for a permissions violation on the connection.
func expectViolation(t *testing.T, ec *errCollector, what string) {
	t.Helper()
	err := ec.wait(3 * time.Second)
	if err == nil {
		t.Fatalf("%s: no permissions violation within 3s", what)
	}
	if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Fatalf("%s: got %v, want a permissions violation", what, err)
	}
}

func TestTwinConfinedToItsInbox(t *testing.T) {
	g := newTestGrid(t)
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	ec := newErrCollector()
	rogue := g.connect(t, k1, nats.ErrorHandler(ec.handler))

	// Twin 1 may listen on its own inbox.
	own, err := rogue.SubscribeSync(RequestSubject(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := rogue.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ec.wait(300 * time.Millisecond); err != nil {
		t.Fatalf("subscribing to its own inbox: %v", err)
	}

	// Another twin's inbox, another key's replies, everything: refused.
	for _, subj := range []string{RequestSubject(2), "rmb.*", "rmb.>", ">", InboxPrefix(k2.Public()) + ".>", "_INBOX.>"} {
		sub, err := rogue.SubscribeSync(subj)
		if err != nil {
			t.Fatalf("subscribe %s: %v", subj, err)
		}
		expectViolation(t, ec, "subscribing to "+subj)
		// Nothing sent to twin 2 reaches the rogue subscription.
		sender := g.connect(t, k2)
		if err := sender.Publish(RequestSubject(2), []byte("for twin 2")); err != nil {
			t.Fatal(err)
		}
		if err := sender.Flush(); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Fatalf("subscription to %s received %q on %s", subj, m.Data, m.Subject)
		}
	}

	// Twin 1 may send to any twin's inbox, but not elsewhere.
	if err := rogue.Publish(RequestSubject(2), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := rogue.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ec.wait(300 * time.Millisecond); err != nil {
		t.Fatalf("publishing to twin 2's inbox: %v", err)
	}
	for _, subj := range []string{"_INBOX." + strings.Repeat("a", 64) + ".x", "$JS.API.INFO", "anything"} {
		if err := rogue.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		expectViolation(t, ec, "publishing to "+subj)
	}
	_ = own.Unsubscribe()
}

func TestUnregisteredKeyCanOnlyCreateTwin(t *testing.T) {
	g := newTestGrid(t)
	k2 := g.twin(t, 2)
	g.serve(t, 2, k2, map[string]HandlerFunc{"test.echo": echo})

	// The registry (a system key) answers twin creation.
	reg := g.connect(t, g.system)
	if _, err := reg.Subscribe(TwinCreateSubject, func(m *nats.Msg) { _ = m.Respond([]byte("twin 42")) }); err != nil {
		t.Fatal(err)
	}
	if err := reg.Flush(); err != nil {
		t.Fatal(err)
	}

	stranger := mustKey(t)
	ec := newErrCollector()
	nc := g.connect(t, stranger, nats.ErrorHandler(ec.handler))
	msg, err := nc.Request(TwinCreateSubject, []byte("create"), 5*time.Second)
	if err != nil {
		t.Fatalf("twin creation request: %v", err)
	}
	if string(msg.Data) != "twin 42" {
		t.Errorf("got %q, want the registry's answer", msg.Data)
	}

	for _, subj := range []string{RequestSubject(2), "registry.farm.create", "anything"} {
		if err := nc.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		expectViolation(t, ec, "publishing to "+subj)
	}
	for _, subj := range []string{RequestSubject(42), "registry.>", ">"} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		expectViolation(t, ec, "subscribing to "+subj)
	}
	// Calls through the relay go nowhere.
	g.resolver.set(9, stranger.Public()) // even if it pretends to be twin 9 now
	c := NewClient(nc, 9, stranger, g.resolver)
	err = c.Call(ctxTimeout(t, time.Second), 2, "test.echo", echoReq{}, nil)
	if err == nil {
		t.Fatal("call from an unregistered connection succeeded")
	}
	// Once registered, a new connection gets twin rights.
	nc2 := g.connect(t, stranger)
	c2 := NewClient(nc2, 9, stranger, g.resolver)
	if err := c2.Call(ctxTimeout(t, 5*time.Second), 2, "test.echo", echoReq{}, nil); err != nil {
		t.Fatalf("call after registration: %v", err)
	}
}

func TestConnectRefused(t *testing.T) {
	g := newTestGrid(t)
	k := g.twin(t, 1)
	other := mustKey(t)

	// No credentials.
	if nc, err := nats.Connect(g.url); err == nil {
		nc.Close()
		t.Error("connect without a key succeeded")
	}
	// A nonce signed by another key than the one presented.
	pub, err := nkeys.Encode(nkeys.PrefixByteUser, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	bad := nats.Nkey(string(pub), func(nonce []byte) ([]byte, error) { return other.Sign(nonce), nil })
	if nc, err := nats.Connect(g.url, bad); err == nil {
		nc.Close()
		t.Error("connect with a forged nonce signature succeeded")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("got %v, want an authorization violation", err)
	}
	// A non-user nkey.
	acc, err := nkeys.Encode(nkeys.PrefixByteAccount, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	wrong := nats.Nkey(string(acc), func(nonce []byte) ([]byte, error) { return k.Sign(nonce), nil })
	if nc, err := nats.Connect(g.url, wrong); err == nil {
		nc.Close()
		t.Error("connect with an account nkey succeeded")
	}
}

func TestSystemKeyUsesJetStream(t *testing.T) {
	g := newTestGrid(t)
	nc := g.connect(t, g.system)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(&nats.KeyValueConfig{Bucket: "twins"})
	if err != nil {
		t.Fatalf("creating kv bucket: %v", err)
	}
	if _, err := kv.Put("1", []byte("x")); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	// A twin has no JetStream rights.
	k := g.twin(t, 1)
	tn := g.connect(t, k, nats.ErrorHandler(newErrCollector().handler))
	tjs, err := tn.JetStream(nats.MaxWait(500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tjs.KeyValue("twins"); err == nil {
		t.Error("a twin reached a kv bucket")
	}
}

// TestTwinHasNoJetStream: the grid's JetStream (the registry's buckets and
// events stream) lives in the grid account; a twin can neither read it,
// nor create consumers on it, nor publish into its subjects (issue 14,
// findings 1 and 5).
func TestTwinHasNoJetStream(t *testing.T) {
	g := newTestGrid(t)
	ctx := ctxTimeout(t, 20*time.Second)
	sys := g.connect(t, g.system)
	sjs, err := jetstream.New(sys)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sjs.CreateStream(ctx, jetstream.StreamConfig{Name: "ZOS_EVENTS", Subjects: []string{"registry.events.node.*"}})
	if err != nil {
		t.Fatalf("creating stream: %v", err)
	}
	if _, err := sjs.Publish(ctx, "registry.events.node.7", []byte(`{"kind":"contract_created"}`)); err != nil {
		t.Fatalf("publishing event: %v", err)
	}

	k := g.twin(t, 7)
	ec := newErrCollector()
	nc := g.connect(t, k, nats.ErrorHandler(ec.handler))
	js, err := jetstream.New(g.connect(t, k))
	if err != nil {
		t.Fatal(err)
	}
	short := ctxTimeout(t, time.Second)
	if _, err := js.OrderedConsumer(short, "ZOS_EVENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"registry.events.node.7"}}); err == nil {
		t.Error("a twin created a consumer on the events stream")
	}
	// A push consumer delivering into another twin's inbox, raw.
	for _, subj := range []string{"$JS.API.CONSUMER.CREATE.ZOS_EVENTS", "$JS.API.STREAM.DELETE.ZOS_EVENTS", "$KV.zos_farms.1", "registry.events.node.7"} {
		if err := nc.Publish(subj, []byte(`{"config":{"deliver_subject":"_INBOX.victim"}}`)); err != nil {
			t.Fatal(err)
		}
		expectViolation(t, ec, "publishing to "+subj)
	}
	if err := js.DeleteStream(ctxTimeout(t, time.Second), "ZOS_EVENTS"); err == nil {
		t.Error("a twin deleted the events stream")
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs; n != 1 || info.State.Consumers != 0 {
		t.Errorf("stream holds %d messages and %d consumers, want 1 and 0", n, info.State.Consumers)
	}
}

// TestConnectSignsOnlyNonces: a rogue server choosing the "nonce" must not
// obtain the twin key's signature over a registry write or a deployment's
// challenge (issue 14, found while fixing finding 6).
func TestConnectSignsOnlyNonces(t *testing.T) {
	k := mustKey(t)
	for _, tt := range []struct {
		name  string
		nonce string
		sign  bool
	}{
		{"server nonce", "AbCdEfGh_-12345", true},
		{"registry write", "zos-registry-v1\nfarm.create\n", false},
		{"hex challenge", "0123456789abcdef0123456789abcdef", false},
		{"16 chars", "AbCdEfGh_-123456", false},
		{"15 chars, not base64url", "AbCdEfGh_-1234=", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- ""
					return
				}
				defer c.Close()
				info, _ := json.Marshal(map[string]any{"server_id": "rogue", "version": "2.10.0", "auth_required": true,
					"nonce": tt.nonce, "max_payload": 1 << 20, "proto": 1, "headers": true})
				_, _ = c.Write([]byte("INFO " + string(info) + "\r\n"))
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				got <- line
			}()
			nc, err := Connect("nats://"+ln.Addr().String(), k, nats.Timeout(time.Second), nats.MaxReconnects(0))
			if nc != nil {
				nc.Close()
			}
			line := <-got
			signed := strings.Contains(line, `"sig"`)
			if signed != tt.sign {
				t.Fatalf("signed %v, want %v (connect error %v; client sent %q)", signed, tt.sign, err, line)
			}
		})
	}
}
