package gridtypes

import "testing"

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"20G", 20 * Gigabyte, true},
		{"20GiB", 20 * Gigabyte, true},
		{" 512m ", 512 * Megabyte, true},
		{"1k", Kilobyte, true},
		{"2T", 2 * Terabyte, true},
		{"4096", 4096, true},
		{"", 0, false},
		{"0", 0, false},
		{"-1G", 0, false},
		{"G", 0, false},
		{"1.5G", 0, false},
		{"99999999999999999T", 0, false},
	} {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q): got %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
