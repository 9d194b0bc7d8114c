package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// balanceOf reads a twin's account and ledger through zosctl.
type account struct {
	registry.Account
	Ledger []registry.LedgerEntry `json:"ledger"`
}

func balanceOf(u *user, twin uint32) account {
	u.t.Helper()
	var a account
	u.json(&a, "balance", strconv.Itoa(int(twin)), "--ledger")
	return a
}

// workloadState is the state of workload name in the contract's
// deployment, as the node reports it.
func workloadState(u *user, contract uint64, name string) gridtypes.ResultState {
	var d gridtypes.Deployment
	out, _, code := u.run("deployment", "get", strconv.FormatUint(contract, 10), "--json")
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil {
		return ""
	}
	if wl := d.Get(name); wl != nil {
		return wl.Result.State
	}
	return gridtypes.StateDeleted
}

// qemuPidIn is qemuPid for the VM of the node whose data directory is
// dir: other tests on the machine may run a VM of the same name.
func qemuPidIn(t testing.TB, name, dir string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "-x", ".*qemu-system-x86_64 -name "+regexp.QuoteMeta(name)+" .*").Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), dir+"/") {
			return pid
		}
	}
	return 0
}

// pingWait is pingRetry for up to 60s: a tcg guest on a loaded machine
// (just booted, or resumed and catching up with its timers) may take a
// while to answer.
func pingWait(ns string, a netip.Addr) (ok bool, out string) {
	_ = testutil.Poll(60*time.Second, func() (bool, error) {
		ok, out = netlab.Ping(ns, a, 1)
		return ok, nil
	})
	return ok, out
}

// TestBillingGrace (short: the node's data dir under it holds unix sockets) runs a tenant out of funds with a VM and a zdb
// on a node that reports usage every 2s to a grid billing every 2s:
//   - a deposit by a twin that is not a treasury twin is refused, nothing
//     changes;
//   - the balance runs out: both contracts go to grace, the VM is paused
//     (same QEMU process, state paused, no ping from its network), the zdb
//     refuses writes and still reads;
//   - a deposit resumes both (same QEMU, ping, zdb writes, data intact);
//   - running out again, a node killed during grace re-applies the paused
//     state at start (adopted QEMU still paused); the grace period's end
//     removes both (QEMU gone, namespace gone, the node's capacity free);
//   - every bill is the pricing applied to the contract's capacity over
//     the reported time, every bill payment in the ledger is what its bill
//     said was due, and the ledger sums to the balance.
func TestBillingGrace(t *testing.T) {
	cache := requireVMPrereqs(t)
	const grace = 40 * time.Second
	g := startGridIn(t, t.TempDir(), "--treasury-twins", "1", "--billing-period", "2s", "--grace-period", grace.String())
	treasury := newUser(t, g) // twin 1
	farmer := newUser(t, g)
	n := vmNode(t, g, farmer, cache, "--usage-every", "2s")
	u := newUser(t, g)
	url := busyboxFlist(t, u, "busybox")
	id := strconv.Itoa(int(n.id))
	var me registry.Twin
	u.json(&me, "twin", "show")

	var pricing registry.GridInfo
	u.json(&pricing, "pricing")

	// A deposit by the tenant itself (not a treasury twin): refused,
	// nothing changes.
	before := balanceOf(u, me.ID)
	if out, errs, code := u.run("deposit", strconv.Itoa(int(me.ID)), "1000000"); code == 0 {
		t.Fatalf("a deposit by a non-treasury twin passed:\n%s", out)
	} else {
		t.Logf("non-treasury deposit refused: %s", strings.TrimSpace(errs))
	}
	if after := balanceOf(u, me.ID); after.Balance != before.Balance || after.Seq != before.Seq {
		t.Fatalf("a refused deposit changed the account: got %+v, want %+v", after.Account, before.Account)
	}

	// Enough to deploy and boot on a loaded machine; the rest is sent
	// away once the VM runs.
	treasury.mustRun("deposit", strconv.Itoa(int(me.ID)), "10000000")

	var stats0 nodeapi.Statistics
	u.json(&stats0, "node", "stats", id)
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.37.0.0/16")
	var vmd, dbd gridtypes.Deployment
	u.json(&vmd, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/start.sh", "--disk", "200M:/data", "--volume", "10M:/shared")
	u.json(&dbd, "deploy", "zdb", "--node", id, "--size", "1G", "--password", "pw", "--name", "db")
	vmName := primitives.VMName(vmd.WorkloadID("vm"))
	var res gridtypes.ZMachineResult
	if err := vmd.Get("vm").Result.Unmarshal(&res); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(res.IP)
	nrNS := network.NamesOf(n.prefix(), gridtypes.NetID(vmd.TwinID, "net")).NS
	ns := zdbResult(t, &dbd, "db").Namespace
	value := "before" // the zdb's value of k
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nSET k before\n", ns)); !strings.Contains(out, "OK") {
		t.Fatalf("zdb write before grace: %q", out)
	}
	waitConsole(t, u, vmd.ContractID, "vm", regexp.MustCompile(`zos-vm-up boots=1`), 3*time.Minute)
	pid := qemuPidIn(t, vmName, n.data)
	if pid == 0 {
		t.Fatal("no QEMU process for the VM")
	}
	tap := (&primitives.ZMachineManager{Prefix: n.prefix()}).TapName(vmd.WorkloadID("vm"))
	if ok, out := pingWait(nrNS, ip); !ok {
		t.Fatalf("the network cannot ping the VM before grace (its tap %s in use: %v): %s", tap, tapInUse(tap), out)
	}

	// What both contracts cost per hour, from the grid's pricing and
	// the capacity the contracts hold.
	contracts := []uint64{vmd.ContractID, dbd.ContractID}
	used := map[uint64]registry.Resources{}
	var perHour int64
	for _, c := range contracts {
		var rc registry.Contract
		u.json(&rc, "contract", "show", strconv.FormatUint(c, 10))
		used[c] = rc.Used
		cost, err := pricing.Pricing.Cost(registry.Usage{Seconds: 3600, Capacity: rc.Used})
		if err != nil {
			t.Fatal(err)
		}
		perHour += cost
	}
	if perHour < 3600 {
		t.Fatalf("the contracts cost %d per hour: too little to run out in seconds", perHour)
	}
	// runOut leaves the tenant ~10s of funds, sending the rest to the
	// treasury, and waits for both workloads to be paused.
	runOut := func() {
		t.Helper()
		a := balanceOf(u, me.ID)
		if keep := perHour * 10 / 3600; a.Balance > keep {
			u.mustRun("transfer", "1", strconv.FormatInt(a.Balance-keep, 10))
		}
		waitFor(t, 90*time.Second, "the VM to be paused", func() bool { return workloadState(u, vmd.ContractID, "vm") == gridtypes.StatePaused })
		waitFor(t, 30*time.Second, "the zdb to be paused", func() bool { return workloadState(u, dbd.ContractID, "db") == gridtypes.StatePaused })
	}
	checkPaused := func(when string) {
		t.Helper()
		if got := qemuPidIn(t, vmName, n.data); got != pid {
			t.Errorf("%s: QEMU is pid %d, want the same %d", when, got, pid)
		}
		if ok, out := netlab.Ping(nrNS, ip, 2); ok {
			t.Errorf("%s: the paused VM answers ping: %s", when, out)
		}
		if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nSET k paused\n", ns)); strings.Contains(out, "OK\nOK") || !strings.Contains(out, "OK") {
			t.Errorf("%s: the paused zdb took a write (or refused the select): %q", when, out)
		}
		if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nGET k\n", ns)); !strings.Contains(out, value) {
			t.Errorf("%s: the paused zdb's data is not readable: %q", when, out)
		}
	}

	runOut()
	for _, c := range contracts {
		var rc registry.Contract
		u.json(&rc, "contract", "show", strconv.FormatUint(c, 10))
		if rc.BillingState != billing.StateGrace {
			t.Errorf("contract %d: billing state %q, want grace", c, rc.BillingState)
		}
	}
	checkPaused("in grace")

	// A deposit pays what is due: both run again, with their data.
	treasury.mustRun("deposit", strconv.Itoa(int(me.ID)), strconv.FormatInt(perHour, 10))
	waitFor(t, 60*time.Second, "the VM to run again", func() bool { return workloadState(u, vmd.ContractID, "vm") == gridtypes.StateOk })
	waitFor(t, 30*time.Second, "the zdb to run again", func() bool { return workloadState(u, dbd.ContractID, "db") == gridtypes.StateOk })
	if got := qemuPidIn(t, vmName, n.data); got != pid {
		t.Errorf("after resume QEMU is pid %d, want the same %d", got, pid)
	}
	if ok, out := pingWait(nrNS, ip); !ok {
		t.Errorf("the resumed VM does not answer ping (its tap %s in use: %v): %s", tap, tapInUse(tap), out)
	}
	if log := u.mustRun("logs", strconv.FormatUint(vmd.ContractID, 10), "vm"); strings.Contains(log, "boots=2") {
		t.Errorf("the VM rebooted:\n%s", log)
	}

	// Out of funds again; the node is killed in grace and comes back:
	// it pauses at start what is in grace (the adopted VM stays paused).
	runOut()
	n.crash()
	crashed := time.Now()
	n.start()
	n.waitRegistered(u)
	waitFor(t, 30*time.Second, "the VM to be paused after the restart", func() bool {
		return workloadState(u, vmd.ContractID, "vm") == gridtypes.StatePaused
	})
	checkPaused("after a restart in grace")

	// The grace period ends: the grid deletes both, the node removes them.
	waitFor(t, grace+60*time.Second, "QEMU to go at the grace period's end", func() bool { return qemuPidIn(t, vmName, n.data) == 0 })
	waitFor(t, 30*time.Second, "the zdb namespace to go", func() bool {
		return strings.Contains(strings.ToLower(redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\n", ns))), "not found")
	})
	for _, c := range contracts {
		var rc registry.Contract
		u.json(&rc, "contract", "show", strconv.FormatUint(c, 10))
		if rc.State != registry.StateCanceled || rc.BillingState != billing.StateOutOfFunds {
			t.Errorf("contract %d: state %q billing %q, want canceled out_of_funds", c, rc.State, rc.BillingState)
		}
	}
	waitFor(t, 30*time.Second, "the node's capacity to be free", func() bool {
		var s nodeapi.Statistics
		u.json(&s, "node", "stats", id)
		return s.Used == stats0.Used
	})

	// Bills: each is the price of the contract's capacity over the
	// reported time (each report rounded down: at most one unit less per
	// report; traffic adds less than a unit here), bills before the
	// crash cover their time without gaps.
	billedUpTo := map[uint64]map[uint64]int64{} // contract, bill: the sum of its bills 1..bill
	var billed int64
	for _, c := range contracts {
		var bills []registry.Bill
		u.json(&bills, "contract", "bills", strconv.FormatUint(c, 10))
		if len(bills) == 0 {
			t.Errorf("contract %d has no bills", c)
		}
		for _, b := range bills {
			full, err := pricing.Pricing.Cost(registry.Usage{Seconds: b.End - b.Start, Capacity: used[c]})
			if err != nil {
				t.Fatal(err)
			}
			low := full - int64(b.Reports)
			if time.Unix(b.End, 0).After(crashed) {
				low = 0 // the node's downtime is not billed
			}
			if b.Amount > full+1 || b.Amount < low || b.Reports == 0 {
				t.Errorf("contract %d bill %d: got %d for %d reports over %ds, want %d..%d (%d per hour)",
					c, b.Seq, b.Amount, b.Reports, b.End-b.Start, low, full+1, perHour)
			}
			if billedUpTo[c] == nil {
				billedUpTo[c] = map[uint64]int64{}
			}
			billedUpTo[c][b.Seq] = billedUpTo[c][b.Seq-1] + b.Amount
			billed += b.Amount
		}
	}
	// The ledger sums to the balance. A payment named after bill k pays
	// all that was due when it was set: with the payments of the contract
	// before it, the bills 1..k.
	a := balanceOf(u, me.ID)
	var sum, paid int64
	paidOf := map[uint64]int64{}
	for i, e := range a.Ledger {
		sum += e.Amount
		if e.Seq != uint64(i+1) || e.Balance != sum {
			t.Errorf("ledger entry %d: seq %d balance %d, want seq %d balance %d", i, e.Seq, e.Balance, i+1, sum)
		}
		if e.Kind != registry.EntryBill {
			continue
		}
		paid -= e.Amount
		var c, k uint64
		if _, err := fmt.Sscanf(e.Ref, "bill:%d:%d", &c, &k); err != nil {
			t.Errorf("ledger payment %+v: ref %v", e, err)
			continue
		}
		paidOf[c] -= e.Amount
		if want, ok := billedUpTo[c][k]; !ok || paidOf[c] != want {
			t.Errorf("after the payment %s of %d, contract %d paid %d, its bills 1..%d are %d (found %v)", e.Ref, -e.Amount, c, paidOf[c], k, want, ok)
		}
	}
	if sum != a.Balance {
		t.Errorf("the ledger sums to %d, the balance is %d", sum, a.Balance)
	}
	if paid > billed || paid == 0 {
		t.Errorf("paid %d for bills of %d in all", paid, billed)
	}
	t.Logf("billed %d, paid %d, balance %d, %d per hour", billed, paid, a.Balance, perHour)
}
