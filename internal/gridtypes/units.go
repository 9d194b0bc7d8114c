// Package gridtypes is the deployment model that users sign and nodes
// verify: deployments, workloads of every type, their JSON (field for field
// as the original system writes it), the challenge hash (a byte-compatible
// MD5 stream), validation, the update rules, signature requirements and the
// capacity each workload uses. It is pure: no I/O, no clock.
package gridtypes

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Unit is a size in bytes.
type Unit = uint64

// Sizes in bytes, 1024-based.
const (
	Kilobyte Unit = 1024
	Megabyte      = 1024 * Kilobyte
	Gigabyte      = 1024 * Megabyte
	Terabyte      = 1024 * Gigabyte
)

// ParseSize reads a size with an optional binary suffix K, M, G or T
// ("20G" = 20 GiB).
func ParseSize(s string) (uint64, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := uint64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("size %q: want a positive number with optional K, M, G, T", s)
	}
	if n > ^uint64(0)/mult {
		return 0, fmt.Errorf("size %q overflows", s)
	}
	return n * mult, nil
}

// Timestamp is a unix time in seconds. In JSON it is written as a number and
// read from a number or an ISO-8601 (RFC 3339) string.
type Timestamp int64

// UnmarshalJSON accepts a unix number or an ISO-8601 string.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*t = 0
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return fmt.Errorf("timestamp: %w", err)
		}
		if str == "" {
			*t = 0
			return nil
		}
		if n, err := strconv.ParseInt(str, 10, 64); err == nil {
			*t = Timestamp(n)
			return nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
			if tm, err := time.Parse(layout, str); err == nil {
				*t = Timestamp(tm.Unix())
				return nil
			}
		}
		return fmt.Errorf("timestamp %q is neither unix seconds nor ISO-8601", str)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %s is not an integer number of seconds", s)
	}
	*t = Timestamp(n)
	return nil
}

// Time returns the timestamp as a time.Time.
func (t Timestamp) Time() time.Time { return time.Unix(int64(t), 0) }

// Capacity is what a workload uses: CRU in logical cores, MRU/SRU/HRU in
// bytes, IPV4U in addresses.
type Capacity struct {
	CRU   uint64 `json:"cru"`
	SRU   Unit   `json:"sru"`
	HRU   Unit   `json:"hru"`
	MRU   Unit   `json:"mru"`
	IPV4U uint64 `json:"ipv4u"`
}

// Add adds c2 to c.
func (c *Capacity) Add(c2 Capacity) {
	c.CRU += c2.CRU
	c.SRU += c2.SRU
	c.HRU += c2.HRU
	c.MRU += c2.MRU
	c.IPV4U += c2.IPV4U
}

// Zero reports whether c uses nothing.
func (c Capacity) Zero() bool { return c == Capacity{} }
