// Package usage meters what each contract of the node holds over time, for
// billing: the capacity reserved and the public IPs held during windows of
// time (a new window starts when they change, none is longer than
// billing.MaxWindow) and the network bytes of its workloads in each
// window. Closed windows wait on disk until the registry accepted them, so
// a node that was offline reports late and never twice. A node that was
// down is not billed for the gap: the windows open before a restart end
// at the last moment the node saw them. internal/node/node wires it to the
// provision engine (what contracts hold), the VMs' taps (bytes) and the
// registry client (ReportUsage).
package usage

import (
	"github.com/zos-go/zos/internal/billing"
)

// Sample is what one contract holds at a moment.
type Sample struct {
	Contract  uint64 `json:"contract"`
	CRU       uint64 `json:"cru"`
	MRU       uint64 `json:"mru"`
	SRU       uint64 `json:"sru"`
	HRU       uint64 `json:"hru"`
	PublicIPs uint32 `json:"public_ips"`
	// NetBytes is the running count of the bytes its workloads sent and
	// received (the counters of their links); it may fall back to zero
	// when a link is made again.
	NetBytes uint64 `json:"net_bytes"`
}

// held is what is billed at a constant rate over a window.
func (s Sample) held() Sample { s.Contract, s.NetBytes = 0, 0; return s }

// window is a contract's open window.
type window struct {
	Start int64  `json:"start"`
	Last  int64  `json:"last"` // the last moment the node saw it
	Held  Sample `json:"held"`
	Base  uint64 `json:"base"` // the link counters at Last
	Net   uint64 `json:"net"`  // bytes counted since Start
}

// State is the meter's state, kept on disk: the open windows and the
// closed ones not yet accepted.
type State struct {
	Open    map[uint64]*window    `json:"open"`
	Pending []billing.UsageReport `json:"pending"`
}

// Meter turns samples into windows. It is not safe for concurrent use
// (Usage serialises it).
type Meter struct {
	node  uint32
	state State
}

// NewMeter returns the meter of node, continuing from st (nil: none). The
// windows that were open end at the last moment they were seen: what
// happened while the node was down is not billed.
func NewMeter(node uint32, st *State) *Meter {
	m := &Meter{node: node, state: State{Open: map[uint64]*window{}}}
	if st == nil {
		return m
	}
	m.state.Pending = st.Pending
	for c, w := range st.Open {
		m.close(c, w, w.Last)
	}
	return m
}

// State returns the state to keep.
func (m *Meter) State() State { return m.state }

// Pending returns the closed windows not yet accepted, oldest first.
func (m *Meter) Pending() []billing.UsageReport { return m.state.Pending }

// Drop removes the first n pending windows (accepted, or refused for
// good).
func (m *Meter) Drop(n int) {
	m.state.Pending = append([]billing.UsageReport(nil), m.state.Pending[n:]...)
}

// Observe records what every contract of the node holds at now (unix
// seconds). A contract whose capacity or public IPs changed ends its
// window at now and starts another; one absent from samples is gone: its
// window ends at now. A window reaching billing.MaxWindow ends too.
func (m *Meter) Observe(now int64, samples []Sample) {
	seen := map[uint64]bool{}
	for _, s := range samples {
		seen[s.Contract] = true
		w := m.state.Open[s.Contract]
		if w == nil {
			m.state.Open[s.Contract] = &window{Start: now, Last: now, Held: s.held(), Base: s.NetBytes}
			continue
		}
		if now < w.Last {
			now = w.Last // the clock went back: never a negative window
		}
		w.Net += counted(w.Base, s.NetBytes)
		w.Base, w.Last = s.NetBytes, now
		if s.held() != w.Held || now-w.Start >= billing.MaxWindow {
			m.cut(s.Contract, w, now, s.held())
		}
	}
	for c, w := range m.state.Open {
		if !seen[c] {
			m.close(c, w, max(now, w.Last))
			delete(m.state.Open, c)
		}
	}
}

// Cut ends every open window at now, as at the end of a report period,
// and starts the next ones there.
func (m *Meter) Cut(now int64) {
	for c, w := range m.state.Open {
		m.cut(c, w, max(now, w.Last), w.Held)
	}
}

// cut ends w at now and opens the next window of c holding held; the bytes
// of an empty window move to the next one.
func (m *Meter) cut(c uint64, w *window, now int64, held Sample) {
	next := &window{Start: now, Last: now, Held: held, Base: w.Base}
	if !m.close(c, w, now) {
		next.Net = w.Net
	}
	m.state.Open[c] = next
}

// close appends w, ended at end, to the pending windows, split into
// windows of at most billing.MaxWindow (the bytes go with the last one);
// false when it is empty.
func (m *Meter) close(c uint64, w *window, end int64) bool {
	if end <= w.Start {
		return false
	}
	for start := w.Start; start < end; start += billing.MaxWindow {
		r := billing.UsageReport{
			NodeID: m.node, ContractID: c, Start: start, End: min(start+billing.MaxWindow, end),
			CRU: w.Held.CRU, MRU: w.Held.MRU, SRU: w.Held.SRU, HRU: w.Held.HRU, PublicIPs: w.Held.PublicIPs,
		}
		if r.End == end {
			r.NetBytes = w.Net
		}
		m.state.Pending = append(m.state.Pending, r)
	}
	return true
}

// counted is how many bytes a link counter moved from base to cur; a
// counter below its base started again from zero.
func counted(base, cur uint64) uint64 {
	if cur >= base {
		return cur - base
	}
	return cur
}
