package boot

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/node/node"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/update"
	"github.com/zos-go/zos/internal/nodeapi"
)

// NodeStatus is what the node child writes for the console.
type NodeStatus struct {
	State   string            `json:"state"` // starting, registered
	NodeID  uint32            `json:"node_id"`
	Farm    uint32            `json:"farm"`
	Grid    string            `json:"grid"`
	Pools   []nodeapi.Pool    `json:"pools"`
	Modules map[string]string `json:"modules"`
	Updated time.Time         `json:"updated"`
	// Version is what the node child runs (a live update changes it
	// under init); Channel the release channel it follows ("" without
	// self-update); Update the last update's result (UpdateResult).
	Version string `json:"version,omitempty"`
	Channel string `json:"channel,omitempty"`
	Update  string `json:"update,omitempty"`
}

// UpdateResult says in one line where the node's self-update stands.
func UpdateResult(s update.State) string {
	switch {
	case s.Trying != "":
		return "trying " + s.Trying
	case len(s.Failed) > 0:
		last := s.Failed[len(s.Failed)-1]
		on := s.Current
		if on == "" {
			on = "the booted version"
		}
		return fmt.Sprintf("%s failed, back on %s", last, on)
	case s.Current != "":
		return "updated to " + s.Current
	}
	return "none yet"
}

// writeStatus replaces the status file atomically.
func writeStatus(path string, s NodeStatus) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing node status: %w", err)
	}
	return nil
}

func readStatus(path string) (NodeStatus, error) {
	var s NodeStatus
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// Screen is everything the console shows.
type Screen struct {
	Version   string
	Uptime    time.Duration
	Config    Config
	Network   string // "eth0 10.0.2.15/24 via 10.0.2.2" or what is wrong
	Node      NodeStatus
	NodeUp    bool
	Restarts  int
	Listening []string
	Modules   string
	Errors    []string
}

func gib(n uint64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// free is size-used, 0 when over-allocated.
func free(size, used uint64) uint64 {
	if used > size {
		return 0
	}
	return size - used
}

// Render draws the screen as text lines (no escapes).
func (s Screen) Render() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("==== Zero-OS %s ==== up %s ====", s.Version, s.Uptime.Truncate(time.Second))
	node := "not registered"
	if s.Node.NodeID != 0 {
		node = strconv.FormatUint(uint64(s.Node.NodeID), 10)
	}
	w("node:      %s", node)
	w("farm:      %d    runmode: %s", s.Config.Farm, s.Config.RunMode)
	running, channel, upd := s.Version, s.Node.Channel, s.Node.Update
	if s.Node.Version != "" {
		running = s.Node.Version
	}
	if channel == "" {
		channel = "-"
	}
	if upd == "" {
		upd = "off"
	}
	w("version:   %s    channel: %s    update: %s", running, channel, upd)
	state := s.Node.State
	if !s.NodeUp {
		state = "node not running"
	}
	if state == "" {
		state = "starting"
	}
	w("grid:      %s (%s)", s.Config.Grid, state)
	w("network:   %s", s.Network)
	var ssdSize, ssdUsed, hddSize, hddUsed uint64
	for _, p := range s.Node.Pools {
		if p.Broken != "" {
			continue
		}
		if p.Type == string(storage.SSD) {
			ssdSize, ssdUsed = ssdSize+p.Size, ssdUsed+p.Used
		} else {
			hddSize, hddUsed = hddSize+p.Size, hddUsed+p.Used
		}
	}
	w("capacity:  SSD %s used, %s free; HDD %s used, %s free", gib(ssdUsed), gib(free(ssdSize, ssdUsed)), gib(hddUsed), gib(free(hddSize, hddUsed)))
	for _, p := range s.Node.Pools {
		line := fmt.Sprintf("  pool %s %s %s/%s", p.Name, p.Type, gib(p.Used), gib(p.Size))
		if p.Broken != "" {
			line += " BROKEN: " + p.Broken
		}
		w("%s", line)
	}
	w("listening: %s", strings.Join(s.Listening, " "))
	w("kernel:    %s", s.Modules)
	var mods []string
	for k, v := range s.Node.Modules {
		if v != "ok" {
			mods = append(mods, k+": "+v)
		}
	}
	sort.Strings(mods)
	errs := append(append([]string(nil), s.Errors...), mods...)
	if s.Restarts > 0 {
		errs = append(errs, fmt.Sprintf("the node restarted %d times", s.Restarts))
	}
	if len(errs) == 0 {
		w("errors:    none")
	}
	for _, e := range errs {
		w("error:     %s", e)
	}
	// One machine-readable line for tests and serial-console scrapers.
	w("zos-status node=%d farm=%d state=%s listening=%s version=%s channel=%s", s.Node.NodeID, s.Config.Farm,
		strings.ReplaceAll(state, " ", "_"), strings.Join(s.Listening, ","), running, channel)
	return b.String()
}

// Listening lists the TCP sockets in LISTEN state from /proc/net/tcp and
// tcp6 files ("10.0.2.15:9900"), sorted.
func Listening(files ...string) []string {
	var out []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if a, ok := parseListenLine(sc.Text()); ok {
				out = append(out, a)
			}
		}
		fh.Close()
	}
	sort.Strings(out)
	return out
}

// parseListenLine reads one line of /proc/net/tcp{,6}.
func parseListenLine(l string) (string, bool) {
	f := strings.Fields(l)
	if len(f) < 4 || f[3] != "0A" {
		return "", false
	}
	host, port, ok := strings.Cut(f[1], ":")
	if !ok {
		return "", false
	}
	raw, err := hex.DecodeString(host)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", false
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return "", false
	}
	return net.JoinHostPort(net.IP(raw).String(), strconv.FormatUint(p, 10)), true
}

// moduleStates is the node's status sink: it keeps each module's last
// state ("ok" or its error) as the node reports it, so the console shows
// what is wrong before the node registers (a wrong grid=, a grid that is
// down).
type moduleStates struct {
	mu      sync.Mutex        // guards modules
	modules map[string]string // module -> "ok" or its last error
}

var _ node.StatusSink = (*moduleStates)(nil)

// ModuleStatus implements node.StatusSink.
func (m *moduleStates) ModuleStatus(module, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.modules == nil {
		m.modules = map[string]string{}
	}
	m.modules[module] = state
}

// snapshot returns a copy of the modules' states.
func (m *moduleStates) snapshot() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.modules))
	for k, v := range m.modules {
		out[k] = v
	}
	return out
}
