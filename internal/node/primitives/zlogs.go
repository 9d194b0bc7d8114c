package primitives

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"github.com/zos-go/zos/internal/consolelog"
	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/wait"
)

// ConsoleLogs gives the console log file of a zmachine workload.
type ConsoleLogs interface {
	ConsoleLog(wl gridtypes.WorkloadID) (path string, err error)
}

// DialFunc dials from inside a network (a twin's network resource).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DialerLookup returns the dial function of network name of twin;
// network.Manager.Dialer is one.
type DialerLookup func(twin uint32, name string) (func(ctx context.Context, network, addr string) (net.Conn, error), error)

// ZLogsConfig tunes the zlogs streamers; zero values take the defaults.
type ZLogsConfig struct {
	Poll       time.Duration // how often the log is read (1s)
	MinBackoff time.Duration // first wait after a failed connection (1s)
	MaxBackoff time.Duration // longest wait between connection attempts (1m)
	Timeout    time.Duration // for dialing and for each write to the output (10s)
	// Egress is the node's policy; an output is refused at an address it
	// refuses (nil: the zero policy), except private addresses that are not
	// the node's own: the output is dialled inside the tenant's network,
	// where they are the tenant's network (what that network may reach
	// beyond is the network firewall's call).
	Egress *egress.Policy
}

func (c *ZLogsConfig) defaults() {
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(time.Minute, c.MinBackoff)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Egress == nil {
		c.Egress = &egress.Policy{}
	}
}

// checkAddr tells whether a zlogs output may be at a: what the node's
// policy allows, and private addresses other than the node's own.
func (c *ZLogsConfig) checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if egress.Classify(a) == egress.ClassPrivate && !c.own(a) {
		return nil
	}
	return c.Egress.Check(a)
}

func (c *ZLogsConfig) own(a netip.Addr) bool {
	if c.Egress.Own == nil {
		return false
	}
	for _, o := range c.Egress.Own() {
		if o.Unmap() == a {
			return true
		}
	}
	return false
}

// checkHost refuses an output host that is a literal address checkAddr
// refuses, or a loopback name; other names are checked once resolved.
func (c *ZLogsConfig) checkHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return c.checkAddr(a)
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback name", egress.ErrDenied, host)
	}
	return nil
}

// ZLogsManager provisions zlogs workloads: one goroutine per workload
// follows the console log of the workload's zmachine (as tail -f, across
// rotations) and sends each line to the output, a redis channel (PUBLISH)
// or a websocket (one text message a line), dialed from inside the
// machine's network. A lost or unreachable output is retried with backoff;
// while it is down the log is not read, so what was written meanwhile is
// sent once it is back (unless the node rotated it away).
//
// The output is the tenant's: its address must pass the egress rule
// (ZLogsConfig.Egress), and what it answers is read with bounds: a redis
// reply is one line of at most maxReplyLine bytes (a status, an integer or
// an error, all AUTH and PUBLISH can answer), a websocket handshake answer
// at most maxHandshake bytes within Timeout. A hostile output costs a
// failed connection and a retry, never the node.
type ZLogsManager struct {
	cfg    ZLogsConfig
	logs   ConsoleLogs
	dialer DialerLookup
	log    *slog.Logger
	// lookup resolves output host names (the system resolver; tests
	// replace it).
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)

	mu      sync.Mutex // guards streams and closed
	streams map[gridtypes.WorkloadID]*streamer
	closed  bool
	wg      sync.WaitGroup // the streamers' goroutines
}

var (
	_ provision.Manager = (*ZLogsManager)(nil)
	_ provision.Updater = (*ZLogsManager)(nil)
)

// NewZLogsManager returns a manager that finds the logs with logs and
// dials with what dialer returns for the machine's network.
func NewZLogsManager(cfg ZLogsConfig, logs ConsoleLogs, dialer DialerLookup, log *slog.Logger) *ZLogsManager {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ZLogsManager{cfg: cfg, logs: logs, dialer: dialer, log: log.With("component", "zlogs"),
		lookup: net.DefaultResolver.LookupNetIP, streams: map[gridtypes.WorkloadID]*streamer{}}
}

// Close stops every streamer and waits for them; later provisions fail.
func (m *ZLogsManager) Close() {
	m.mu.Lock()
	m.closed = true
	for id, s := range m.streams {
		s.cancel()
		delete(m.streams, id)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// zlogsTarget is what a streamer needs of its workload.
type zlogsTarget struct {
	twin    uint32
	machine gridtypes.WorkloadID
	network string // of the machine's interface
	output  *url.URL
}

func (m *ZLogsManager) targetOf(wl *provision.Workload) (zlogsTarget, error) {
	z, err := provision.Data[*gridtypes.ZLogs](wl)
	if err != nil {
		return zlogsTarget{}, err
	}
	if err := z.Valid(wl.Deployment); err != nil {
		return zlogsTarget{}, err
	}
	u, err := parseOutput(z.Output)
	if err != nil {
		return zlogsTarget{}, err
	}
	if err := m.cfg.checkHost(u.Hostname()); err != nil {
		return zlogsTarget{}, fmt.Errorf("output %s: %w", u.Redacted(), err)
	}
	vm := wl.Deployment.Get(z.ZMachine)
	vd, err := vm.WorkloadData()
	if err != nil {
		return zlogsTarget{}, fmt.Errorf("zmachine %q: %w", z.ZMachine, err)
	}
	var ifaces []gridtypes.MachineInterface
	switch m := vd.(type) {
	case *gridtypes.ZMachine:
		ifaces = m.Network.Interfaces
	case *gridtypes.ZMachineLight:
		ifaces = m.Network.Interfaces
	}
	if len(ifaces) == 0 {
		return zlogsTarget{}, fmt.Errorf("zmachine %q has no network interface to send logs from", z.ZMachine)
	}
	return zlogsTarget{
		twin:    wl.Deployment.TwinID,
		machine: gridtypes.NewWorkloadID(wl.Deployment.TwinID, wl.Deployment.ContractID, z.ZMachine),
		network: ifaces[0].Network,
		output:  u,
	}, nil
}

// parseOutput checks an output URL: redis://[:password@]host:port/channel,
// ws://host[:port]/path or wss://host[:port]/path.
func parseOutput(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", s, err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("output %q has no host", s)
	}
	switch u.Scheme {
	case "redis":
		if strings.Trim(u.Path, "/") == "" {
			return nil, fmt.Errorf("output %q names no channel (redis://host:port/channel)", s)
		}
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("output %q: scheme %q is not redis, ws or wss", s, u.Scheme)
	}
	return u, nil
}

// Provision starts the streamer of the workload and returns once it runs.
// A streamer already running with the same target is kept; one with
// another target is replaced.
func (m *ZLogsManager) Provision(_ context.Context, wl *provision.Workload) (any, error) {
	t, err := m.targetOf(wl)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("the zlogs manager is closed")
	}
	if s, ok := m.streams[wl.ID]; ok {
		if s.target.twin == t.twin && s.target.machine == t.machine && s.target.network == t.network && s.target.output.String() == t.output.String() {
			return nil, nil
		}
		s.cancel()
		delete(m.streams, wl.ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &streamer{m: m, target: t, cancel: cancel, stopped: make(chan struct{}), log: m.log.With("workload", string(wl.ID), "output", t.output.Redacted())}
	m.streams[wl.ID] = s
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s.run(ctx)
	}()
	return nil, nil
}

// Update points the streamer at the new target.
func (m *ZLogsManager) Update(ctx context.Context, wl *provision.Workload) (any, error) {
	return m.Provision(ctx, wl)
}

// Deprovision stops the streamer.
func (m *ZLogsManager) Deprovision(_ context.Context, wl *provision.Workload) error {
	m.mu.Lock()
	s, ok := m.streams[wl.ID]
	delete(m.streams, wl.ID)
	m.mu.Unlock()
	if ok {
		s.cancel()
		<-s.stopped
	}
	return nil
}

// Running reports whether a streamer runs for workload id.
func (m *ZLogsManager) Running(id gridtypes.WorkloadID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.streams[id]
	return ok
}

// streamer follows one log to one output.
type streamer struct {
	m      *ZLogsManager
	target zlogsTarget
	cancel context.CancelFunc
	log    *slog.Logger

	stopped chan struct{} // closed when run returns
}

// maxLine is the longest line sent in one piece.
const maxLine = 64 << 10

// run connects, sends lines while the output takes them, and reconnects
// with backoff when it does not, until ctx ends.
func (s *streamer) run(ctx context.Context) {
	defer close(s.stopped)
	cfg := s.m.cfg
	var f *consolelog.Follower
	var lines lineSplitter
	backoff := cfg.MinBackoff
	for ctx.Err() == nil {
		out, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("zlogs_connect", "err", err, "retry_in", backoff)
			if !wait.Sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
			continue
		}
		backoff = cfg.MinBackoff
		s.log.Info("zlogs_connected")
		err = s.pump(ctx, out, &f, &lines)
		out.Close()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("zlogs_output_lost", "err", err, "retry_in", backoff)
		if !wait.Sleep(ctx, backoff) {
			return
		}
	}
}

// pump reads the log every poll and sends its complete lines to out until
// a send fails or ctx ends. A line pending when a send fails is sent again
// on the next connection.
func (s *streamer) pump(ctx context.Context, out output, f **consolelog.Follower, lines *lineSplitter) error {
	tick := time.NewTicker(s.m.cfg.Poll)
	defer tick.Stop()
	for {
		if *f == nil {
			path, err := s.m.logs.ConsoleLog(s.target.machine)
			if err == nil {
				*f = consolelog.NewFollower(path, 0)
			}
		}
		if *f != nil {
			for {
				data, err := (*f).Next()
				if errors.Is(err, fs.ErrNotExist) {
					break // the machine has not written yet
				} else if err != nil {
					s.log.Warn("zlogs_read", "err", err)
					break
				}
				lines.add(data)
				if len(data) < consolelog.MaxChunk {
					break
				}
			}
		}
		if err := out.send(lines.take(2 * s.m.cfg.Poll)); err != nil {
			return err
		}
		lines.sent()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// lineSplitter cuts a byte stream into lines; a partial line is given out
// once it stayed unfinished for a while (a prompt) or grew past maxLine.
type lineSplitter struct {
	buf     []byte
	ready   [][]byte // taken, not yet confirmed sent
	partial time.Time
}

func (l *lineSplitter) add(b []byte) {
	if len(b) > 0 && len(l.buf) == 0 {
		l.partial = time.Now()
	}
	l.buf = append(l.buf, b...)
}

// take returns the lines to send: the ones not confirmed sent before, and
// the complete ones in the buffer.
func (l *lineSplitter) take(flushAfter time.Duration) [][]byte {
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if i > maxLine {
			i = maxLine
		}
		l.ready = append(l.ready, bytes.TrimRight(l.buf[:i], "\r"))
		l.buf = l.buf[min(i+1, len(l.buf)):]
		l.partial = time.Now()
	}
	if len(l.buf) >= maxLine || (len(l.buf) > 0 && time.Since(l.partial) >= flushAfter) {
		n := min(len(l.buf), maxLine)
		l.ready = append(l.ready, l.buf[:n])
		l.buf = l.buf[n:]
		l.partial = time.Now()
	}
	if len(l.buf) == 0 {
		l.buf = nil
	}
	return l.ready
}

// sent confirms the lines of the last take went out.
func (l *lineSplitter) sent() { l.ready = nil }

// output is a connected log destination.
type output interface {
	send(lines [][]byte) error
	Close() error
}

// connect dials the output from inside the machine's network, at an
// address the egress rule allows: the host is resolved here and only
// the allowed addresses it resolves to are dialled, so a name cannot lead
// where a literal address may not.
func (s *streamer) connect(ctx context.Context) (output, error) {
	dial, err := s.m.dialer(s.target.twin, s.target.network)
	if err != nil {
		return nil, fmt.Errorf("finding network %q: %w", s.target.network, err)
	}
	u := s.target.output
	port := u.Port()
	if port == "" {
		port = map[string]string{"redis": "6379", "ws": "80", "wss": "443"}[u.Scheme]
	}
	dctx, cancel := context.WithTimeout(ctx, s.m.cfg.Timeout)
	defer cancel()
	addrs, err := s.resolve(dctx, u.Hostname())
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	for _, a := range addrs {
		addr := net.JoinHostPort(a.String(), port)
		c, derr := dial(dctx, "tcp", addr)
		if derr == nil {
			conn = c
			break
		}
		err = errors.Join(err, fmt.Errorf("dialing %s: %w", addr, derr))
	}
	if conn == nil {
		return nil, err
	}
	// Closing the connection unblocks a write when the streamer stops.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var out output
	switch u.Scheme {
	case "redis":
		out, err = newRedisOutput(conn, u, s.m.cfg.Timeout)
	default:
		out, err = newWSOutput(conn, u, s.m.cfg.Timeout)
	}
	if err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	return closer{out, stop}, nil
}

// resolve returns the addresses of host the egress rule allows, or an
// error naming why none is.
func (s *streamer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if err := s.m.cfg.checkHost(host); err != nil {
		return nil, err
	}
	var all []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		all = []netip.Addr{a}
	} else {
		if all, err = s.m.lookup(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("resolving %s: %w", host, err)
		}
	}
	var ok []netip.Addr
	var denied error
	for _, a := range all {
		if err := s.m.cfg.checkAddr(a); err != nil {
			denied = errors.Join(denied, err)
			continue
		}
		ok = append(ok, a.Unmap())
	}
	if len(ok) == 0 {
		if denied == nil {
			denied = fmt.Errorf("%s has no address", host)
		}
		return nil, fmt.Errorf("output %s: %w", host, denied)
	}
	return ok, nil
}

type closer struct {
	output
	stop func() bool
}

func (c closer) Close() error { c.stop(); return c.output.Close() }

// redisOutput publishes lines to a channel, speaking RESP.
type redisOutput struct {
	conn    net.Conn
	r       *bufio.Reader
	channel string
	timeout time.Duration
}

func newRedisOutput(conn net.Conn, u *url.URL, timeout time.Duration) (*redisOutput, error) {
	o := &redisOutput{conn: conn, r: bufio.NewReaderSize(conn, maxReplyLine), channel: strings.TrimPrefix(u.Path, "/"), timeout: timeout}
	if pass, ok := u.User.Password(); ok {
		args := [][]byte{[]byte("AUTH"), []byte(pass)}
		if user := u.User.Username(); user != "" {
			args = [][]byte{[]byte("AUTH"), []byte(user), []byte(pass)}
		}
		if err := o.do([][][]byte{args}); err != nil {
			return nil, fmt.Errorf("redis AUTH: %w", err)
		}
	}
	return o, nil
}

// do sends commands in one write and reads their replies, failing on the
// first error reply.
func (o *redisOutput) do(cmds [][][]byte) error {
	if len(cmds) == 0 {
		return nil
	}
	var b []byte
	for _, args := range cmds {
		b = resp.AppendRequest(b, args...)
	}
	o.conn.SetDeadline(time.Now().Add(o.timeout))
	if _, err := o.conn.Write(b); err != nil {
		return err
	}
	for range cmds {
		if err := readReply(o.r); err != nil {
			return err
		}
	}
	return nil
}

func (o *redisOutput) send(lines [][]byte) error {
	cmds := make([][][]byte, len(lines))
	for i, l := range lines {
		cmds[i] = [][]byte{[]byte("PUBLISH"), []byte(o.channel), l}
	}
	return o.do(cmds)
}

func (o *redisOutput) Close() error { return o.conn.Close() }

// redisError is an error reply.
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// maxReplyLine bounds a reply line; the output's buffer holds one.
const maxReplyLine = 4 << 10

// readReply reads the reply of one command the streamer sends: AUTH
// answers a status, PUBLISH an integer, either may answer an error
// (returned as a redisError). Those are single lines: any other reply (a
// bulk string, an array, a RESP3 type), a line longer than maxReplyLine
// or one not ending in CRLF is a protocol error (resp.ReadLineReply), so
// what the server sends costs a bounded buffer and no recursion.
func readReply(r *bufio.Reader) error {
	rep, err := resp.ReadLineReply(r, maxReplyLine)
	if err != nil {
		return fmt.Errorf("redis reply: %w", err)
	}
	if rep.Kind == resp.KindError {
		return redisError(strings.ToValidUTF8(string(rep.Str), "?"))
	}
	return nil
}

// wsOutput sends one text message a line.
type wsOutput struct {
	ws      *websocket.Conn
	timeout time.Duration
}

func newWSOutput(conn net.Conn, u *url.URL, timeout time.Duration) (*wsOutput, error) {
	var rwc net.Conn = conn
	if u.Scheme == "wss" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
		conn.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("tls handshake with %s: %w", u.Host, err)
		}
		rwc = tc
	}
	origin := "http://" + u.Host
	if u.Scheme == "wss" {
		origin = "https://" + u.Host
	}
	cfg, err := websocket.NewConfig(u.String(), origin)
	if err != nil {
		return nil, err
	}
	// The handshake answer is read within the timeout and maxHandshake
	// bytes: headers sent for ever, slowly or fast, end it.
	conn.SetDeadline(time.Now().Add(timeout))
	lc := &limitedConn{Conn: rwc, left: maxHandshake}
	ws, err := websocket.NewClient(cfg, lc)
	if err != nil {
		return nil, fmt.Errorf("websocket handshake with %s: %w", u.Redacted(), err)
	}
	lc.unlimit()
	conn.SetDeadline(time.Time{})
	return &wsOutput{ws: ws, timeout: timeout}, nil
}

// maxHandshake bounds the websocket handshake answer (status line and
// headers).
const maxHandshake = 16 << 10

// errHandshakeTooLarge ends a handshake answer over maxHandshake.
var errHandshakeTooLarge = fmt.Errorf("handshake answer over %d bytes", maxHandshake)

// limitedConn fails reads past a number of bytes until unlimit. Only the
// streamer's goroutine reads.
type limitedConn struct {
	net.Conn
	left int // bytes Read may still return; -1: no limit
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left < 0 {
		return c.Conn.Read(p)
	}
	if c.left == 0 {
		return 0, errHandshakeTooLarge
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

func (c *limitedConn) unlimit() { c.left = -1 }

func (o *wsOutput) send(lines [][]byte) error {
	for _, l := range lines {
		o.ws.SetWriteDeadline(time.Now().Add(o.timeout))
		if err := websocket.Message.Send(o.ws, string(l)); err != nil {
			return err
		}
	}
	return nil
}

func (o *wsOutput) Close() error { return o.ws.Close() }
