package explorer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name          string
		age           time.Duration
		power, target string
		never         bool
		want          string
	}{
		{"fresh", time.Minute, "", "", false, StatusUp},
		{"power up", time.Minute, registry.PowerUp, registry.PowerUp, false, StatusUp},
		{"at the up window", UpWindow, "", "", false, StatusUp},
		{"past the up window", UpWindow + time.Second, "", "", false, StatusDown},
		{"report from the future", -time.Hour, "", "", false, StatusUp},
		{"powered down", 3 * time.Hour, registry.PowerDown, "", false, StatusStandby},
		{"going down", time.Minute, registry.PowerUp, registry.PowerDown, false, StatusStandby},
		{"at the standby window", StandbyWindow, registry.PowerDown, registry.PowerDown, false, StatusStandby},
		{"past the standby window", StandbyWindow + time.Second, registry.PowerDown, "", false, StatusDown},
		{"never reported", 0, "", "", true, StatusDown},
		{"never reported, power down", 0, registry.PowerDown, "", true, StatusDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := registry.Node{Updated: testNow.Add(-tt.age), Power: tt.power, PowerTarget: tt.target}
			if tt.never {
				n.Updated = time.Time{}
			}
			if got := Status(&n, testNow); got != tt.want {
				t.Errorf("Status: got %s, want %s", got, tt.want)
			}
			s := buildSnapshot(testNow, []registry.Node{n}, nil, nil, nil)
			if got := s.meta[0].status(unixNano(testNow)); got != tt.want {
				t.Errorf("index status: got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFree(t *testing.T) {
	tests := []struct {
		name                string
		total, used, report registry.Resources
		want                registry.Resources
	}{
		{"defaults small node", registry.Resources{CRU: 4, MRU: 8 * gb, SRU: 100 * gb, HRU: 1000 * gb},
			registry.Resources{CRU: 1, MRU: 1 * gb, SRU: 10 * gb, HRU: 100 * gb}, registry.Resources{},
			registry.Resources{CRU: 3, MRU: 5 * gb, SRU: 70 * gb, HRU: 900 * gb}},
		{"10% memory on big nodes", registry.Resources{MRU: 100 * gb}, registry.Resources{}, registry.Resources{},
			registry.Resources{MRU: 90 * gb}},
		{"reported reservations", registry.Resources{CRU: 8, MRU: 100 * gb, SRU: 100 * gb, HRU: 10 * gb},
			registry.Resources{}, registry.Resources{CRU: 1, MRU: 3 * gb, SRU: 5 * gb, HRU: gb},
			registry.Resources{CRU: 7, MRU: 97 * gb, SRU: 95 * gb, HRU: 9 * gb}},
		{"overcommitted saturates", registry.Resources{CRU: 2, MRU: 4 * gb, SRU: 10 * gb},
			registry.Resources{CRU: 4, MRU: 3 * gb, SRU: 1 * gb}, registry.Resources{},
			registry.Resources{}},
		{"empty", registry.Resources{}, registry.Resources{}, registry.Resources{}, registry.Resources{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := registry.Node{Total: tt.total, Used: tt.used, Reserved: tt.report}
			if got := Free(&n); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzNodesQuery feeds arbitrary query strings to /nodes: the answer is
// always 200 with a JSON array or 400 with a JSON error, never a panic.
func FuzzNodesQuery(f *testing.F) {
	for _, q := range []string{"", "status=up&free_mru=1", "farm_ids=1,2&sort_by=free_mru&sort_order=desc",
		"page=99999999999&size=1", "country=%ff", "free_ips=&ipv4=t", "node_id=1&node_id=2"} {
		f.Add(q)
	}
	h := New(Config{Now: func() time.Time { return testNow }}, fixture(), nil).Handler()
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest(http.MethodGet, "/nodes", nil)
		req.URL.RawQuery = q
		if _, err := url.ParseQuery(q); err != nil {
			req.URL.RawQuery = url.QueryEscape(q)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var nodes []Node
			if err := json.Unmarshal(rec.Body.Bytes(), &nodes); err != nil {
				t.Fatalf("%q: 200 with %s: %v", q, rec.Body, err)
			}
		case http.StatusBadRequest:
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%q: 400 with %s", q, rec.Body)
			}
		default:
			t.Fatalf("%q: got %d %s", q, rec.Code, rec.Body)
		}
	})
}
