package usage

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/billing"
)

// step is one look at the contracts (or a cut, the end of a report
// period) at time at.
type step struct {
	at      int64
	cut     bool
	samples []Sample
}

func vm(c uint64, cru, mru uint64, ips uint32, net uint64) Sample {
	return Sample{Contract: c, CRU: cru, MRU: mru, PublicIPs: ips, NetBytes: net}
}

// line renders a window as "contract [start,end) cru mru ips net".
func line(r billing.UsageReport) string {
	return fmt.Sprintf("%d [%d,%d) cru=%d mru=%d ips=%d net=%d", r.ContractID, r.Start, r.End, r.CRU, r.MRU, r.PublicIPs, r.NetBytes)
}

func lines(rs []billing.UsageReport) string {
	var s []string
	for _, r := range rs {
		s = append(s, line(r))
	}
	return strings.Join(s, "\n")
}

// TestWindows: windows from sequences of what contracts hold.
func TestWindows(t *testing.T) {
	const day = billing.MaxWindow
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name:  "steady, cut at the report period",
			steps: []step{{at: 100, samples: []Sample{vm(1, 2, 4, 0, 0)}}, {at: 160, samples: []Sample{vm(1, 2, 4, 0, 500)}}, {at: 200, cut: true}},
			want:  []string{"1 [100,200) cru=2 mru=4 ips=0 net=500"},
		},
		{
			name: "capacity grows, then a public ip is added",
			steps: []step{
				{at: 100, samples: []Sample{vm(1, 1, 4, 0, 10)}},
				{at: 130, samples: []Sample{vm(1, 2, 4, 0, 110)}}, // 100 bytes in the first window
				{at: 150, samples: []Sample{vm(1, 2, 4, 1, 160)}},
				{at: 200, cut: true},
			},
			want: []string{
				"1 [100,130) cru=1 mru=4 ips=0 net=100",
				"1 [130,150) cru=2 mru=4 ips=0 net=50",
				"1 [150,200) cru=2 mru=4 ips=1 net=0",
			},
		},
		{
			name: "a contract gone ends its window; another starts",
			steps: []step{
				{at: 100, samples: []Sample{vm(1, 1, 1, 0, 0), vm(2, 1, 1, 0, 0)}},
				{at: 140, samples: []Sample{vm(2, 1, 1, 0, 7)}},
				{at: 150, samples: []Sample{vm(2, 1, 1, 0, 9), vm(3, 4, 4, 1, 0)}},
				{at: 200, cut: true},
			},
			want: []string{
				"1 [100,140) cru=1 mru=1 ips=0 net=0",
				"2 [100,200) cru=1 mru=1 ips=0 net=9",
				"3 [150,200) cru=4 mru=4 ips=1 net=0",
			},
		},
		{
			name: "a link made again counts from zero",
			steps: []step{
				{at: 100, samples: []Sample{vm(1, 1, 1, 0, 1000)}},
				{at: 110, samples: []Sample{vm(1, 1, 1, 0, 1500)}},
				{at: 120, samples: []Sample{vm(1, 1, 1, 0, 30)}},
				{at: 130, cut: true},
			},
			want: []string{"1 [100,130) cru=1 mru=1 ips=0 net=530"},
		},
		{
			name: "no window longer than a day",
			steps: []step{
				{at: 100, samples: []Sample{vm(1, 1, 1, 0, 0)}},
				{at: 100 + day, samples: []Sample{vm(1, 1, 1, 0, 5)}},
				{at: 100 + day + 10, cut: true},
			},
			want: []string{
				fmt.Sprintf("1 [100,%d) cru=1 mru=1 ips=0 net=5", 100+day),
				fmt.Sprintf("1 [%d,%d) cru=1 mru=1 ips=0 net=0", 100+day, 110+day),
			},
		},
		{
			name: "a change and a cut at the same second: no empty window, bytes kept",
			steps: []step{
				{at: 100, samples: []Sample{vm(1, 1, 1, 0, 0)}},
				{at: 100, samples: []Sample{vm(1, 2, 1, 0, 40)}},
				{at: 100, cut: true},
				{at: 150, cut: true},
			},
			want: []string{"1 [100,150) cru=2 mru=1 ips=0 net=40"},
		},
		{
			name: "the clock going back makes no negative window",
			steps: []step{
				{at: 100, samples: []Sample{vm(1, 1, 1, 0, 0)}},
				{at: 90, samples: []Sample{vm(1, 2, 1, 0, 0)}},
				{at: 120, cut: true},
			},
			want: []string{"1 [100,120) cru=2 mru=1 ips=0 net=0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeter(9, nil)
			for _, s := range tt.steps {
				if s.cut {
					m.Cut(s.at)
				} else {
					m.Observe(s.at, s.samples)
				}
			}
			got := m.Pending()
			for _, r := range got {
				if err := r.Validate(); err != nil {
					t.Errorf("window %s: %v", line(r), err)
				}
				if r.NodeID != 9 {
					t.Errorf("window %s: node %d, want 9", line(r), r.NodeID)
				}
			}
			if g, w := lines(sortByContract(got)), strings.Join(tt.want, "\n"); g != w {
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// sortByContract orders windows by contract, then start (several
// contracts close in map order).
func sortByContract(rs []billing.UsageReport) []billing.UsageReport {
	out := append([]billing.UsageReport(nil), rs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].ContractID < out[i].ContractID || out[j].ContractID == out[i].ContractID && out[j].Start < out[i].Start {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestRestartEndsAtLastSeen: windows open when the node stopped end at
// the last moment it saw them; the time it was down is not billed.
func TestRestartEndsAtLastSeen(t *testing.T) {
	m := NewMeter(9, nil)
	m.Observe(100, []Sample{vm(1, 1, 1, 0, 0)})
	m.Observe(160, []Sample{vm(1, 1, 1, 0, 70)})
	st := m.State()
	m2 := NewMeter(9, &st)
	m2.Observe(5000, []Sample{vm(1, 1, 1, 0, 3)})
	m2.Cut(5060)
	want := "1 [100,160) cru=1 mru=1 ips=0 net=70\n1 [5000,5060) cru=1 mru=1 ips=0 net=0"
	if got := lines(m2.Pending()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
