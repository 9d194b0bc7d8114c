package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	mk := func(name string, typ DeviceType, size, allocated uint64, broken string) *pool {
		return &pool{name: name, typ: typ, size: size, allocated: allocated, broken: broken}
	}
	tests := []struct {
		name    string
		pools   []*pool
		policy  Policy
		size    uint64
		accept  func(*pool) bool
		want    string // pool name, or "" for an error
		wantErr string // substring of the error
	}{
		{name: "most free ssd", policy: SSDOnly, size: 10,
			pools: []*pool{mk("a", SSD, 100, 50, ""), mk("b", SSD, 100, 10, ""), mk("h", HDD, 1000, 0, "")}, want: "b"},
		{name: "ties by name", policy: SSDOnly, size: 10,
			pools: []*pool{mk("b", SSD, 100, 0, ""), mk("a", SSD, 100, 0, "")}, want: "a"},
		{name: "ssd only never takes hdd", policy: SSDOnly, size: 10,
			pools: []*pool{mk("h", HDD, 1000, 0, "")}, wantErr: "no usable ssd pool"},
		{name: "hdd only", policy: HDDOnly, size: 10,
			pools: []*pool{mk("s", SSD, 1000, 0, ""), mk("h", HDD, 100, 0, "")}, want: "h"},
		{name: "ssd first prefers ssd", policy: SSDFirst, size: 10,
			pools: []*pool{mk("s", SSD, 100, 0, ""), mk("h", HDD, 1000, 0, "")}, want: "s"},
		{name: "ssd first falls back to hdd", policy: SSDFirst, size: 200,
			pools: []*pool{mk("s", SSD, 100, 0, ""), mk("h", HDD, 1000, 0, "")}, want: "h"},
		{name: "broken skipped", policy: SSDOnly, size: 10,
			pools: []*pool{mk("a", SSD, 1000, 0, "gone"), mk("b", SSD, 100, 0, "")}, want: "b"},
		{name: "only broken", policy: SSDOnly, size: 10,
			pools: []*pool{mk("a", SSD, 1000, 0, "gone")}, wantErr: "no usable ssd pool"},
		{name: "exact fit", policy: SSDOnly, size: 50,
			pools: []*pool{mk("a", SSD, 100, 50, "")}, want: "a"},
		{name: "no overprovisioning", policy: SSDOnly, size: 51,
			pools: []*pool{mk("a", SSD, 100, 50, ""), mk("b", SSD, 100, 60, "")}, wantErr: "most free ssd pool a has 50 B of 100 B left"},
		{name: "larger than any pool", policy: SSDOnly, size: 101,
			pools: []*pool{mk("a", SSD, 100, 0, "")}, wantErr: "larger than the largest ssd pool"},
		{name: "accept filter", policy: HDDOnly, size: 10, accept: func(p *pool) bool { return p.name != "h1" },
			pools: []*pool{mk("h1", HDD, 1000, 0, ""), mk("h2", HDD, 100, 0, "")}, want: "h2"},
		{name: "accept filters all", policy: HDDOnly, size: 10, accept: func(p *pool) bool { return false },
			pools: []*pool{mk("h1", HDD, 1000, 0, "")}, wantErr: "no usable hdd pool"},
		{name: "overallocated pool has no room", policy: SSDOnly, size: 1,
			pools: []*pool{mk("a", SSD, 100, 150, "")}, wantErr: "no space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := choose(tt.pools, tt.policy, tt.size, tt.accept)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error with %q wrapping ErrNoSpace", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.name != tt.want {
				t.Fatalf("got %v, %v; want pool %s", got, err, tt.want)
			}
		})
	}
}

func TestNextCacheLimit(t *testing.T) {
	const step = 5 * gib
	tests := []struct {
		name               string
		used, limit, wantN uint64
	}{
		{"unset starts at one step", 0, 0, step},
		{"quiet", 2 * gib, step, step},
		{"grow at 60%", 3 * gib, step, 2 * step},
		{"grow above", 9 * gib, 2 * step, 3 * step},
		{"59% stays", 59 * gib / 10, 2 * step, 2 * step},
		{"never below one step", 0, step, step},
		{"shrink below 20% to twice use", 1 * gib, 4 * step, step},
		{"shrink rounds up to a step", 3 * gib, 4 * step, 2 * step},
		{"20% stays", 4 * gib, 4 * step, 4 * step},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextCacheLimit(tt.used, tt.limit, step); got != tt.wantN {
				t.Errorf("nextCacheLimit(%d, %d) = %d, want %d", tt.used, tt.limit, got, tt.wantN)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	good := []string{"162-1234-vol1", "rootfs:162-1234-vm", "a_b.c", "A9", strings.Repeat("x", 200)}
	bad := []string{"", ".", "..", "../etc", "a/b", "/abs", "a..b", ".hidden", "zos-cache", "vdisks", "zdb",
		"a b", "a\x00b", "é", strings.Repeat("x", 201), "a\\b", "a\nb"}
	for _, n := range good {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidName(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalid", n, err)
		}
	}
}

func TestParseHostedDisk(t *testing.T) {
	tests := []struct {
		in   string
		want HostedDisk
		bad  bool
	}{
		{in: "ssd:20G", want: HostedDisk{SSD, 20 * gib}},
		{in: "HDD:500M", want: HostedDisk{HDD, 500 << 20}},
		{in: "hdd:1T", want: HostedDisk{HDD, 1 << 40}},
		{in: "ssd:1GiB", want: HostedDisk{SSD, gib}},
		{in: "ssd:4096", want: HostedDisk{SSD, 4096}},
		{in: "nvme:20G", bad: true},
		{in: "ssd", bad: true},
		{in: "ssd:0", bad: true},
		{in: "ssd:-1G", bad: true},
		{in: "ssd:G", bad: true},
		{in: "ssd:99999999999T", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseHostedDisk(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseHostedDisk(%q) = %v, %v; want ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseHostedDisk(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseHostedDisk(f *testing.F) {
	for _, s := range []string{"ssd:20G", "hdd:1T", "x", "ssd:", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseHostedDisk(s)
		if err == nil && (d.Size == 0 || (d.Type != SSD && d.Type != HDD)) {
			t.Fatalf("ParseHostedDisk(%q) = %+v without error", s, d)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Root: "/mnt"}, true},
		{"relative root", Config{Root: "mnt"}, false},
		{"disks without data dir", Config{Root: "/mnt", Disks: []HostedDisk{{SSD, gib}}}, false},
		{"tiny disk", Config{Root: "/mnt", DataDir: "/d", Disks: []HostedDisk{{SSD, 1 << 20}}}, false},
		{"bad type", Config{Root: "/mnt", DataDir: "/d", Disks: []HostedDisk{{"nvme", gib}}}, false},
		{"bad prefix", Config{Root: "/mnt", Prefix: "a/b"}, false},
		{"hosted", Config{Root: "/mnt", DataDir: "/d", Disks: []HostedDisk{{HDD, gib}}, Prefix: "n1-"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (tt.cfg.CacheStep != 5*gib || tt.cfg.CacheTmpfsSize != 500<<20) {
				t.Errorf("defaults not filled: %+v", tt.cfg)
			}
		})
	}
}
