package planetary

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
)

// Args are the command-line arguments of `zos planetary` for cfg.
func (c Config) Args(tun string) []string {
	args := []string{"--data", c.DataDir, "--tun", tun}
	for _, p := range c.Peers {
		args = append(args, "--peer", p)
	}
	for _, l := range c.Listen {
		args = append(args, "--listen", l)
	}
	for _, p := range c.AllowPorts {
		args = append(args, "--allow-port", strconv.Itoa(int(p)))
	}
	return args
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// Main is `zos planetary`: it parses args (see Config.Args) and runs the
// overlay with its TUN until ctx ends, printing "<address> <subnet>" on out
// once up.
func Main(ctx context.Context, args []string, fw Firewall, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("planetary", flag.ContinueOnError)
	var cfg Config
	var peers, listen stringsFlag
	fs.StringVar(&cfg.DataDir, "data", "", "directory holding the overlay key (required)")
	fs.Var(&peers, "peer", "public yggdrasil peer URI (tcp://HOST:PORT, tls://, quic://), repeatable")
	fs.Var(&listen, "listen", "listen URI for inbound peers, repeatable (default: none)")
	tun := fs.String("tun", "ygg0", "name of the TUN device")
	fs.Func("allow-port", "TCP port of the node the overlay may connect to, repeatable", func(v string) error {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return fmt.Errorf("not a port: %q", v)
		}
		cfg.AllowPorts = append(cfg.AllowPorts, uint16(p))
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Peers, cfg.Listen = peers, listen
	return Run(ctx, cfg, *tun, fw, out, log)
}

// Process is a `zos planetary` process running inside a namespace.
type Process struct {
	Address netip.Addr
	Subnet  netip.Prefix
	cmd     *exec.Cmd
	done    chan struct{}
	err     error

	mu    sync.Mutex // guards peers
	peers []PeerStatus
}

// StartProcess starts argv (a command running Main) inside namespace ns
// ("" = the current one) and waits up to timeout for its address. Its
// stderr goes to stderr.
func StartProcess(ns string, argv []string, stderr io.Writer, timeout time.Duration) (*Process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := netns.Start(ns, cmd); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		l, _ := r.ReadString('\n')
		line <- l
		p.readStatus(r)
		p.err = cmd.Wait()
		close(p.done)
	}()
	fail := func(err error) (*Process, error) {
		_ = p.Stop()
		return nil, err
	}
	select {
	case l := <-line:
		f := strings.Fields(l)
		if len(f) != 2 {
			<-p.done
			return nil, fmt.Errorf("planetary process: no address (%v)", p.err)
		}
		if p.Address, err = netip.ParseAddr(f[0]); err != nil {
			return fail(fmt.Errorf("planetary process address: %w", err))
		}
		if p.Subnet, err = netip.ParsePrefix(f[1]); err != nil {
			return fail(fmt.Errorf("planetary process subnet: %w", err))
		}
		return p, nil
	case <-time.After(timeout):
		return fail(fmt.Errorf("planetary process: no address within %v", timeout))
	}
}

// readStatus keeps the peers of each Status line the process writes
// until its output ends (a line that is not one is skipped).
func (p *Process) readStatus(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var st Status
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		p.mu.Lock()
		p.peers = st.Peers
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// Peers is the peers' state the process last reported.
func (p *Process) Peers() []PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PeerStatus(nil), p.peers...)
}

// Done is closed when the process has ended; Err then says why.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error once Done is closed.
func (p *Process) Err() error { return p.err }

// Stop asks the process to end (SIGTERM), kills it after 10s, and waits.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("planetary process ignored SIGTERM; killed")
	}
}
