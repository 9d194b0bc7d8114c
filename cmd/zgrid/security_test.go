package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// The grid plane under attack from twins and strangers (issue 14). Every
// test here runs zgrid as it ships (embedded server, authentication and
// accounts on) and attacks it through its NATS port.

// secureGrid is a running zgrid with its data directory, its system key's
// connection (which sees the grid's account) and helpers.
type secureGrid struct {
	addrs gridd.Addrs
	dir   string
	sys   *nats.Conn
}

func startSecureGrid(t *testing.T) *secureGrid {
	t.Helper()
	dir := t.TempDir()
	g := &secureGrid{dir: dir}
	g.addrs = gridtest.Start(t, gridd.Config{DataDir: dir, Listen: "127.0.0.1", Port: natsd.RandomPort, Replicas: 1, Auth: true})
	sysKey, _, err := identity.LoadOrCreate(filepath.Join(dir, "system.key"))
	if err != nil {
		t.Fatal(err)
	}
	g.sys = g.connect(t, sysKey)
	return g
}

func (g *secureGrid) connect(t *testing.T, k identity.Key, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := rmb.Connect(g.addrs.NATS, k, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// twin creates a key with a twin and returns a connection with twin rights.
func (g *secureGrid) twin(t *testing.T) (identity.Key, registry.Twin, *nats.Conn) {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tw, err := registry.NewClient(g.connect(t, k), k).CreateTwin(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	// The authenticator learns the key from the registry: reconnect until
	// the connection carries twin rights.
	var nc *nats.Conn
	testutil.Eventually(t, 10*time.Second, "twin rights", func() (bool, error) {
		nc = g.connect(t, k)
		_, err := registry.NewClient(nc, k).Farms(context.Background())
		return err == nil, err
	})
	return k, tw, nc
}

// record is one KV entry as the grid's account sees it.
type record struct {
	rev   uint64
	value []byte
}

// snapshot reads every record of every registry bucket, and the events
// stream's state, through the system connection.
func (g *secureGrid) snapshot(t *testing.T) (map[string]record, jetstream.StreamState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(g.sys)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]record{}
	for _, b := range []string{"zos_twins", "zos_farms", "zos_nodes", "zos_contracts", "zos_index",
		"zos_accounts", "zos_ledger", "zos_billing", "zos_bills"} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatalf("%s/%s: %v", b, k, err)
			}
			out[b+"/"+k] = record{rev: e.Revision(), value: e.Value()}
		}
	}
	st, err := js.Stream(ctx, registry.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out, info.State
}

// populate makes records of an honest farmer: a twin, a farm with a
// public IP, a name contract.
func (g *secureGrid) populate(t *testing.T) (registry.Twin, registry.Farm) {
	t.Helper()
	ctx := context.Background()
	k, tw, nc := g.twin(t)
	c := registry.NewClient(nc, k)
	f, err := c.CreateFarm(ctx, "honest")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddFarmIP(ctx, f.ID, "185.1.2.3/24", "185.1.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNameContract(ctx, "honest"); err != nil {
		t.Fatal(err)
	}
	return tw, f
}

// hostileReplies are reply subjects an attacker would pick: the grid's
// buckets, streams and services, other twins' inboxes and servers.
func hostileReplies(victim identity.Key, victimTwin uint32) []string {
	return []string{
		"$KV.zos_farms.1", "$KV.zos_twins.1", "$KV.zos_twins.2", "$KV.zos_contracts.1", "$KV.zos_index.counter.twin",
		"$KV.zos_index.twinkey." + hex.EncodeToString(victim.Public()),
		"$JS.API.STREAM.DELETE." + registry.EventsStream, "$JS.API.STREAM.PURGE." + registry.EventsStream,
		"$JS.API.CONSUMER.CREATE." + registry.EventsStream,
		"registry.events.node.1", "registry.twin.create", "registry.farm.create",
		rmb.RequestSubject(victimTwin), rmb.InboxPrefix(victim.Public()) + ".stolen",
		"_R_.abc", "_INBOX.x",
	}
}

// TestReplyReflection: finding 1. A request's reply subject names where the
// answer goes; the answer used to be published with the registry's rights,
// so a stranger could overwrite any record with an error reply.
// Windows of the hostile tests. The settle windows follow an honest
// request answered after the attack (the registry handles a subject's
// requests in order, so the attack's were handled too): they give any
// write the attack might still have caused time to land before the
// records are compared, which must show no such write.
const (
	replySettleWindow   = 300 * time.Millisecond
	hostileSettleWindow = 500 * time.Millisecond
	// hostileAttackWindow is how long TestHostileTwin sends hostile
	// messages while an honest twin keeps writing.
	hostileAttackWindow = 5 * time.Second
)

func TestReplyReflection(t *testing.T) {
	g := startSecureGrid(t)
	_, farm := g.populate(t)
	victimKey, victim, _ := g.twin(t)
	_, _, tc := g.twin(t)
	before, evBefore := g.snapshot(t)

	stranger, _ := identity.Generate()
	sc := g.connect(t, stranger, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	for _, nc := range []*nats.Conn{sc, tc} {
		for _, reply := range hostileReplies(victimKey, victim.ID) {
			for _, op := range []string{registry.OpTwinCreate, registry.OpFarmGet, registry.OpFarmCreate} {
				for _, hdr := range []bool{false, true} {
					if err := hostileSend(nc, registry.SubjectPrefix+op, reply, []byte(`{"id":`+fmt.Sprint(farm.ID)+`}`), hdr); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// The registry handles requests in order per subject: once an honest
	// request after the attack is answered, the attack's were handled.
	if _, err := registry.NewClient(tc, identity.Key{}).Farm(context.Background(), farm.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(replySettleWindow)
	after, evAfter := g.snapshot(t)
	diffRecords(t, before, after, nil)
	if evAfter.Msgs != evBefore.Msgs || evAfter.Consumers != evBefore.Consumers {
		t.Errorf("events stream changed: %d msgs %d consumers, was %d %d", evAfter.Msgs, evAfter.Consumers, evBefore.Msgs, evBefore.Consumers)
	}
}

// TestTwinCannotReachGridData: findings 1 and 5. Twins and strangers live in
// an account without JetStream: no KV read or write, no consumer on the
// events stream, no injected event, no subscription to others' subjects.
func TestTwinCannotReachGridData(t *testing.T) {
	g := startSecureGrid(t)
	g.populate(t)
	k, _, _ := g.twin(t)
	before, _ := g.snapshot(t)
	ec := &violations{}
	nc := g.connect(t, k, nats.ErrorHandler(ec.handler))
	for _, subj := range []string{"$KV.zos_farms.1", "$JS.API.STREAM.LIST", "$JS.API.CONSUMER.CREATE." + registry.EventsStream,
		"registry.events.node.1", "_INBOX.someone", "$SYS.REQ.SERVER.PING"} {
		if err := nc.Publish(subj, []byte(`{"deliver_subject":"rmb.1"}`)); err != nil {
			t.Fatal(err)
		}
		ec.expect(t, "publishing to "+subj)
	}
	for _, subj := range []string{">", "registry.>", "$KV.>", "rmb.1", "_INBOX.>", "registry.events.node.1"} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		ec.expect(t, "subscribing to "+subj)
	}
	js, err := jetstream.New(g.connect(t, k))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.KeyValue(ctx, "zos_farms"); err == nil {
		t.Error("a twin opened the farms bucket")
	}
	if _, err := js.OrderedConsumer(ctx, registry.EventsStream, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("a twin created a consumer on the events stream")
	}
	after, _ := g.snapshot(t)
	diffRecords(t, before, after, nil)
}

// TestHostileTwin sends random signed and unsigned messages with hostile
// reply subjects to every subject a twin may publish to, for a bounded
// time, while an honest twin keeps working. Afterwards every record that
// existed is unchanged, new records belong to the attacker, the victim
// received nothing on its inbox, and the grid still serves.
func TestHostileTwin(t *testing.T) {
	g := startSecureGrid(t)
	honestTwin, _ := g.populate(t)
	victimKey, victim, victimConn := g.twin(t)
	var victimGot atomic.Int64
	if _, err := victimConn.Subscribe(rmb.InboxPrefix(victimKey.Public())+".>", func(*nats.Msg) { victimGot.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := victimConn.Flush(); err != nil {
		t.Fatal(err)
	}
	attackerKey, attacker, attackerConn := g.twin(t)
	stranger, _ := identity.Generate()
	strangerConn := g.connect(t, stranger, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	hk, honestWriter, hc := g.twin(t)
	honest := registry.NewClient(hc, hk)
	before, evBefore := g.snapshot(t)
	replies := hostileReplies(victimKey, victim.ID)
	subjects := append(registry.ServiceSubjects(), rmb.RequestSubject(victim.ID), rmb.RequestSubject(honestTwin.ID), "rmb.0")
	ops := []string{registry.OpTwinCreate, registry.OpFarmCreate, registry.OpFarmAddIP, registry.OpNodeRegister, registry.OpNodeUptime,
		registry.OpNodePublicConfig, registry.OpNodeUsed, registry.OpContractCreate, registry.OpContractUpdate, registry.OpContractCancel,
		registry.OpNameCreate, registry.OpRentCreate, registry.OpBalanceDeposit, registry.OpBalanceTransfer, registry.OpUsageReport,
		registry.OpFarmPricing}

	// The honest twin works during the attack.
	stop := make(chan struct{})
	var honestOK, honestErr atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := honest.CreateNameContract(ctx, fmt.Sprintf("honest%d", i))
			cancel()
			if err != nil {
				honestErr.Add(1)
				t.Errorf("honest write during the attack: %v", err)
				return
			}
			honestOK.Add(1)
		}
	}()

	rng := rand.New(rand.NewPCG(14, 14))
	deadline := time.Now().Add(hostileAttackWindow)
	sent := 0
	for time.Now().Before(deadline) {
		nc := attackerConn
		if rng.IntN(3) == 0 {
			nc = strangerConn
		}
		subj := subjects[rng.IntN(len(subjects))]
		reply := replies[rng.IntN(len(replies))]
		var data []byte
		switch rng.IntN(4) {
		case 0: // random bytes
			data = make([]byte, rng.IntN(512))
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
		case 1: // random JSON values
			data = []byte(fmt.Sprintf(`{"id":%d,"farm_id":%d,"node_id":%d,"name":"x%d","twin_id":%d}`,
				rng.IntN(5), rng.IntN(5), rng.IntN(5), rng.IntN(1000), rng.IntN(5)))
		default: // validly signed by the attacker, about others' records
			op := ops[rng.IntN(len(ops))]
			payload := map[string]any{"id": rng.IntN(5) + 1, "farm_id": rng.IntN(3) + 1, "node_id": rng.IntN(3) + 1,
				"twin_id": victim.ID, "hash": "abcd", "ip": "185.1.2.9/24", "gw": "185.1.2.1"}
			var err error
			if data, err = registry.SignRequest(attackerKey, op, payload, time.Now()); err != nil {
				t.Fatal(err)
			}
			subj = registry.SubjectPrefix + op
		}
		if err := hostileSend(nc, subj, reply, data, rng.IntN(2) == 0); err != nil {
			t.Fatal(err)
		}
		sent++
		if sent%200 == 0 {
			_ = nc.Flush()
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("sent %d hostile messages; honest writes during the attack: %d ok, %d failed", sent, honestOK.Load(), honestErr.Load())
	if honestOK.Load() == 0 {
		t.Error("no honest write succeeded during the attack")
	}

	// The grid still serves, and the attack's requests have been handled.
	if _, err := registry.NewClient(hc, hk).Farms(context.Background()); err != nil {
		t.Fatalf("after the attack: %v", err)
	}
	time.Sleep(hostileSettleWindow)
	after, evAfter := g.snapshot(t)
	diffRecords(t, before, after, func(key string, r record) bool {
		// New index entries follow new records, which are checked.
		if strings.HasPrefix(key, "zos_index/") {
			return true
		}
		// New records are the honest twin's name contracts, or the
		// attacker's own.
		var owned struct {
			TwinID uint32 `json:"twin_id"`
		}
		if err := json.Unmarshal(r.value, &owned); err != nil {
			return false
		}
		return owned.TwinID == attacker.ID || owned.TwinID == honestWriter.ID
	})
	if evAfter.Consumers != evBefore.Consumers {
		t.Errorf("events stream has %d consumers, had %d", evAfter.Consumers, evBefore.Consumers)
	}
	if n := victimGot.Load(); n != 0 {
		t.Errorf("the victim's inbox received %d messages it never asked for", n)
	}
}

// hostileSend publishes a request with a hostile reply subject and, with
// hdr, the same subject as the answer's destination header.
func hostileSend(nc *nats.Conn, subject, reply string, data []byte, hdr bool) error {
	m := &nats.Msg{Subject: subject, Reply: reply, Data: data}
	if hdr {
		m.Header = nats.Header{registry.ReplyHeader: []string{reply}}
	}
	return nc.PublishMsg(m)
}

// diffRecords fails on every record of before that changed or vanished,
// and on every new record that allowNew does not accept (nil: none).
func diffRecords(t *testing.T, before, after map[string]record, allowNew func(string, record) bool) {
	t.Helper()
	for k, b := range before {
		a, ok := after[k]
		switch {
		case !ok:
			t.Errorf("record %s vanished", k)
		case a.rev != b.rev || !bytes.Equal(a.value, b.value):
			if strings.HasPrefix(k, "zos_index/counter.") && allowNew != nil {
				continue
			}
			t.Errorf("record %s changed: rev %d -> %d, %q -> %q", k, b.rev, a.rev, b.value, a.value)
		}
	}
	for k, a := range after {
		if _, ok := before[k]; ok {
			continue
		}
		if allowNew == nil || !allowNew(k, a) {
			t.Errorf("new record %s = %q", k, a.value)
		}
	}
}

// violations collects a connection's permission violations.
type violations struct {
	mu   sync.Mutex // guards errs
	errs []error
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err)
	v.mu.Unlock()
}

// expect waits for the next violation.
func (v *violations) expect(t *testing.T, what string) {
	t.Helper()
	var err error
	testutil.Eventually(t, 3*time.Second, what+": a permissions violation", func() (bool, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if len(v.errs) == 0 {
			return false, nil
		}
		err, v.errs = v.errs[0], v.errs[1:]
		return true, nil
	})
	if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Fatalf("%s: got %v, want a permissions violation", what, err)
	}
}
