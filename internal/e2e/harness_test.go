package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/cli"
	"github.com/zos-go/zos/internal/testutil"
)

// binaries are built once per test binary run.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func buildBinaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "zos-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/zos-go/zos/cmd/zgrid", "github.com/zos-go/zos/cmd/zos", "github.com/zos-go/zos/cmd/vminit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is a process of the test, stopped at cleanup.
type proc struct {
	cmd  *exec.Cmd
	log  *testutil.Buffer
	done chan struct{}
}

func (p *proc) output() string { return p.log.String() }

// logged waits a moment for s in the process's output: a line written
// before an answer the test saw may reach it through the pipe just after.
func (p *proc) logged(s string) bool {
	return testutil.Poll(5*time.Second, func() (bool, error) { return strings.Contains(p.output(), s), nil }) == nil
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), log: &testutil.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p
}

// stop sends SIGTERM and waits (then SIGKILL after timeout).
func (p *proc) stop(timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// grid is a zgrid for one test.
type grid struct {
	url      string
	httpPort int
	hub      string // flist hub URL
	proc     *proc
}

func startGrid(t testing.TB) *grid {
	t.Helper()
	return startGridIn(t, t.TempDir())
}

// startGridIn starts a zgrid whose data directory is data, with extra
// flags.
func startGridIn(t testing.TB, data string, extra ...string) *grid {
	t.Helper()
	bin := buildBinaries(t)
	port, httpPort, hubPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	g := &grid{url: fmt.Sprintf("nats://127.0.0.1:%d", port), httpPort: httpPort, hub: fmt.Sprintf("http://127.0.0.1:%d", hubPort)}
	g.proc = start(t, filepath.Join(bin, "zgrid"), append([]string{"run", "--data", data, "--port", strconv.Itoa(port),
		"--http-port", strconv.Itoa(httpPort), "--hub", strconv.Itoa(hubPort)}, extra...)...)
	t.Cleanup(func() {
		g.proc.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("zgrid output:\n%s", g.proc.output())
		}
	})
	return g
}

// user is a zosctl home with a key and a twin.
type user struct {
	t    testing.TB
	home string
	grid *grid
}

func newUser(t testing.TB, g *grid) *user {
	u := &user{t: t, home: t.TempDir(), grid: g}
	u.mustRun("key", "new")
	// The grid may still be starting: retry twin creation for a while.
	testutil.Eventually(t, 30*time.Second, "twin create", func() (bool, error) {
		if _, errs, code := u.run("twin", "create"); code != 0 {
			return false, errors.New(strings.TrimSpace(errs))
		}
		return true, nil
	})
	return u
}

func (u *user) run(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	env := map[string]string{"ZOSCTL_HOME": u.home, "ZOS_GRID": u.grid.url}
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return out.String(), errb.String(), code
}

func (u *user) mustRun(args ...string) string {
	u.t.Helper()
	out, errs, code := u.run(args...)
	if code != 0 {
		u.t.Fatalf("zosctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// farmToken is a token of the user's farm, letting nodes join it.
func (u *user) farmToken(farm uint32) string {
	u.t.Helper()
	return strings.TrimSpace(u.mustRun("farm", "token", strconv.Itoa(int(farm))))
}

func (u *user) json(v any, args ...string) {
	u.t.Helper()
	out := u.mustRun(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.t.Fatalf("zosctl %s: decoding %q: %v", strings.Join(args, " "), out, err)
	}
}

// node is a hosted zos node with loop disks.
type node struct {
	t       testing.TB
	data    string
	args    []string
	proc    *proc
	zdbPort int
	id      uint32
	// earlier is the output of the node's previous runs (restarts).
	earlier string
}

func requireNodePrereqs(t testing.TB) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "mkfs.btrfs")
	testutil.RequireBinary(t, "losetup")
}

// startNode starts a node that joins a farm with the farmer's token
// (user.farmToken).
func startNode(t testing.TB, g *grid, farmToken string, extra ...string) *node {
	t.Helper()
	requireNodePrereqs(t)
	n := &node{t: t, data: t.TempDir(), zdbPort: testutil.FreePort(t)}
	n.args = append([]string{"node", "--data", n.data, "--grid", g.url, "--farm-token", farmToken,
		"--disk", "ssd:8G", "--disk", "hdd:3G", "--zdb-port", strconv.Itoa(n.zdbPort), "--uptime-every", "2s",
		"--resync-every", "3s", "--prefix", fmt.Sprintf("t%d", n.zdbPort), "--reserved-mem", "256M",
		// The grid's hub, where the tests publish flists, is on 127.0.0.1.
		"--egress-allow", "loopback"}, extra...)
	n.start()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("node output:\n%s%s", n.earlier, n.proc.output())
		}
		cleanupNode(t, n.data)
	})
	return n
}

func (n *node) start() {
	if n.proc != nil {
		n.earlier += n.proc.output() + "        --- node restarted ---\n"
	}
	n.proc = start(n.t, filepath.Join(buildBinaries(n.t), "zos"), n.args...)
}

func (n *node) stop() { n.proc.stop(30 * time.Second) }

// crash kills the node without letting it clean up.
func (n *node) crash() { n.proc.kill() }

// waitRegistered waits until the node's id is known and its API serves
// (a call sent before gets "no server", as any client would).
func (n *node) waitRegistered(u *user) uint32 {
	n.t.Helper()
	var id uint32
	if err := testutil.Poll(60*time.Second, func() (bool, error) {
		out := n.proc.output()
		if id = nodeIDFromLog(out); id != 0 && strings.Contains(out, "msg=serving component=api") {
			return true, nil
		}
		select {
		case <-n.proc.done:
			n.t.Fatalf("node exited:\n%s", n.proc.output())
		default:
		}
		return false, nil
	}); err != nil {
		n.t.Fatalf("node did not register: %v\n%s", err, n.proc.output())
	}
	n.id = id
	return id
}

func nodeIDFromLog(s string) uint32 {
	var id uint32
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, "node_registered") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "node="); ok {
				if n, err := strconv.ParseUint(v, 10, 32); err == nil {
					id = uint32(n)
				}
			}
		}
	}
	return id
}

// cleanupNode unmounts whatever is still mounted under dir and detaches
// loop devices backed by files under it: after a crash test the node had
// no chance to.
func cleanupNode(t testing.TB, dir string) {
	// VMs outlive their node (a restart adopts them): stop what runs from
	// dir (QEMU, virtiofsd, flist daemons) before unmounting.
	killUnder(t, dir)
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil {
		var mounts []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && strings.HasPrefix(f[4], dir) {
				mounts = append(mounts, f[4])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
				t.Logf("unmounting %s: %v", mounts[i], err)
			}
		}
	}
	backs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range backs {
		v, err := os.ReadFile(bf)
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(v)), dir) {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(bf)))
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Logf("detaching %s: %v %s", dev, err, out)
		}
	}
}

// checkClean fails if anything of dir is still mounted or attached.
func checkClean(t testing.TB, dir string) {
	t.Helper()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			t.Errorf("still mounted after the node stopped: %s", f[4])
		}
	}
	backs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range backs {
		if v, err := os.ReadFile(bf); err == nil && strings.HasPrefix(strings.TrimSpace(string(v)), dir) {
			t.Errorf("loop device still attached after the node stopped: %s", bf)
		}
	}
}

// redis runs redis-cli against the node's 0-db with commands on stdin.
func redis(t testing.TB, port int, cmds string) string {
	t.Helper()
	bin := testutil.RequireBinary(t, "redis-cli")
	cmd := exec.Command(bin, "-p", strconv.Itoa(port))
	cmd.Stdin = strings.NewReader(cmds)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	return string(out)
}

// killUnder kills the processes whose command line names a path under
// dir and waits until they are gone.
func killUnder(t testing.TB, dir string) {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil || !strings.Contains(string(b), dir+"/") {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = testutil.Poll(5*time.Second, func() (bool, error) { return syscall.Kill(pid, 0) != nil, nil })
		t.Logf("killed leftover process %d", pid)
	}
}
