package qsfs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

func testConfig(groups ...int) Config {
	c := Config{MinimalShards: 4, ExpectedShards: 6, RedundantGroups: 1, RedundantNodes: 2,
		DataKey: make([]byte, 32), MetaKey: make([]byte, 32), Meta: []Backend{{Address: "m:9900", Namespace: "meta"}}}
	n := 0
	for _, size := range groups {
		var g []Backend
		for range size {
			g = append(g, Backend{Address: fmt.Sprintf("10.0.0.%d:9900", n), Namespace: "ns"})
			n++
		}
		c.Groups = append(c.Groups, g)
	}
	return c
}

// TestValidate: a config is refused, with the reason, when its shards,
// keys, backends or placement cannot work.
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; empty: valid
	}{
		{"three groups of two", func(*Config) {}, ""},
		{"minimal above expected", func(c *Config) { c.MinimalShards = 7 }, "expected_shards: must be more than minimal_shards"},
		{"no parity", func(c *Config) { c.ExpectedShards = 4 }, "expected_shards: must be more than minimal_shards"},
		{"short data key", func(c *Config) { c.DataKey = c.DataKey[:16] }, "encryption key: must be 32 bytes, got 16"},
		{"short meta key", func(c *Config) { c.MetaKey = nil }, "meta encryption key: must be 32 bytes, got 0"},
		{"unknown compression", func(c *Config) { c.Compression = "lz4" }, `unknown algorithm "lz4"`},
		{"no meta", func(c *Config) { c.Meta = nil }, "meta backends: at least one"},
		{"duplicate backend", func(c *Config) { c.Groups[1][0] = c.Groups[0][0] }, "is listed twice"},
		{"empty group", func(c *Config) { c.Groups = append(c.Groups, nil) }, "groups[3]: no backends"},
		{"two groups cannot lose one", func(c *Config) { c.Groups = c.Groups[:2]; c.RedundantNodes = 1 }, "losing 1 groups would lose 3 shards of a chunk, more than the 2"},
		{"too few backends for nodes", func(c *Config) { c.RedundantGroups = 0; c.Groups = [][]Backend{c.Groups[0], c.Groups[1]} }, "losing 2 backends would lose 4 shards"},
		{"losing three groups", func(c *Config) { c.RedundantGroups = 3 }, "losing 3 groups"},
		{"shards too large", func(c *Config) {
			c.ChunkSize = 32 << 20
			c.MinimalShards = 1
			c.ExpectedShards = 3
			c.RedundantNodes = 1
		}, "more than a 0-db value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(2, 2, 2)
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tt.want != "" && err == nil:
				t.Fatalf("got valid, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestConfigFrom: a qsfs workload's config converts field by field; a
// meta type other than zdb and an unknown cipher are refused.
func TestConfigFrom(t *testing.T) {
	key := make(gridtypes.Bytes, 32)
	mkey := make(gridtypes.Bytes, 32)
	mkey[0] = 1
	q := gridtypes.QuantumSafeConfig{
		MinimalShards: 2, ExpectedShards: 4, RedundantGroups: 0, RedundantNodes: 1,
		Encryption: gridtypes.Encryption{Algorithm: "AES", Key: key},
		Meta: gridtypes.QuantumSafeMeta{Type: "zdb", Config: gridtypes.QuantumSafeMetaConfig{
			Prefix: "someprefix", Encryption: gridtypes.Encryption{Algorithm: "AES", Key: mkey},
			Backends: []gridtypes.ZdbBackend{{Address: "[2a02::1]:9900", Namespace: "meta1", Password: "pw"}},
		}},
		Groups: []gridtypes.ZdbGroup{{Backends: []gridtypes.ZdbBackend{
			{Address: "[2a02::2]:9900", Namespace: "d1", Password: "p1"},
			{Address: "[2a02::3]:9900", Namespace: "d2", Password: "p2"},
			{Address: "[2a02::4]:9900", Namespace: "d3", Password: "p3"},
			{Address: "[2a02::5]:9900", Namespace: "d4", Password: "p4"},
		}}},
		Compression: gridtypes.QuantumCompression{Algorithm: "Snappy"},
	}
	c, err := ConfigFrom(q)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%d/%d rg=%d rn=%d comp=%s prefix=%s meta=%v groups=%v mkey0=%d", c.MinimalShards, c.ExpectedShards,
		c.RedundantGroups, c.RedundantNodes, c.Compression, c.MetaPrefix, c.Meta, c.Groups, c.MetaKey[0])
	want := "2/4 rg=0 rn=1 comp=snappy prefix=someprefix meta=[{[2a02::1]:9900 meta1 pw}] " +
		"groups=[[{[2a02::2]:9900 d1 p1} {[2a02::3]:9900 d2 p2} {[2a02::4]:9900 d3 p3} {[2a02::5]:9900 d4 p4}]] mkey0=1"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	bad := q
	bad.Meta.Type = "etcd"
	if _, err := ConfigFrom(bad); err == nil || !strings.Contains(err.Error(), `meta.type: "etcd"`) {
		t.Errorf("meta type etcd: got %v, want refused", err)
	}
	bad = q
	bad.Encryption.Algorithm = "DES"
	if _, err := ConfigFrom(bad); err == nil || !strings.Contains(err.Error(), `encryption.algorithm: "DES"`) {
		t.Errorf("DES: got %v, want refused", err)
	}
	bad = q
	bad.RedundantNodes = 3
	if _, err := ConfigFrom(bad); err == nil || !strings.Contains(err.Error(), "losing 3 backends") {
		t.Errorf("3 redundant nodes of 4 shards: got %v, want a placement error", err)
	}
}

// TestPlace: shards spread evenly over groups and backends, and the loss
// check counts the worst case.
func TestPlace(t *testing.T) {
	mk := func(groups ...int) []placeBackend {
		var out []placeBackend
		for g, n := range groups {
			for range n {
				out = append(out, placeBackend{idx: len(out), group: g})
			}
		}
		return out
	}
	tests := []struct {
		name              string
		backends          []placeBackend
		n, min, rg, rn    int
		wantLoad, wantErr string
	}{
		{"6 over 3x2", mk(2, 2, 2), 6, 4, 1, 2, "[1 1 1 1 1 1]", ""},
		{"6 over 3x3", mk(3, 3, 3), 6, 4, 1, 2, "groups [2 2 2]", ""},
		{"6 over 4 backends", mk(2, 2), 6, 4, 0, 2, "", "losing 2 backends would lose 4"},
		{"6 over 4 backends, one lost", mk(2, 2), 6, 4, 0, 1, "[2 1 2 1]", ""},
		{"16 over 4x1", mk(1, 1, 1, 1), 16, 12, 1, 0, "[4 4 4 4]", ""},
		{"uneven groups", mk(4, 1), 5, 3, 1, 0, "", "losing 1 groups would lose"},
		{"uneven groups, nodes only", mk(4, 1), 5, 3, 0, 2, "[1 1 1 1 1]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := place(tt.backends, tt.n, tt.min, tt.rg, tt.rn, 0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			load := make([]int, len(tt.backends))
			groups := map[int]int{}
			for _, i := range p {
				load[i]++
				groups[tt.backends[i].group]++
			}
			got := fmt.Sprint(load)
			if strings.HasPrefix(tt.wantLoad, "groups") {
				var g []int
				for i := range len(groups) {
					g = append(g, groups[i])
				}
				got = "groups " + fmt.Sprint(g)
			}
			if got != tt.wantLoad {
				t.Errorf("got %s, want %s", got, tt.wantLoad)
			}
		})
	}
}

// TestMaxChunksFitsARecord: an object of the most chunks allowed, each
// shard with the longest backend address and key, still seals into a
// record a 0-db backend takes.
func TestMaxChunksFitsARecord(t *testing.T) {
	aead, _ := newAEAD(make([]byte, 32))
	for _, total := range []int{3, 6, 16, 64} {
		m := objectMeta{Name: "n", Version: 1 << 62, DataVersion: 1 << 62, Compression: CompressionSnappy, Minimal: 1, Total: total}
		shards := make([]shardMeta, total)
		for i := range shards {
			shards[i] = shardMeta{Backend: "[2a02:1802:5e:0:ffff:ffff:ffff:ffff]:65535/" + strings.Repeat("n", 64),
				Key: strings.Repeat("f", 32) + ".255", Sum: make([]byte, 32)}
		}
		for range maxChunks(total) {
			m.Chunks = append(m.Chunks, chunkMeta{Size: 1 << 22, SealedLen: 1<<22 + 16, Nonce: make([]byte, 12), Shards: shards})
		}
		if _, err := sealRecord(aead, "prefix", "prefix/o/n", m); err != nil {
			t.Errorf("%d shards, %d chunks: %v", total, len(m.Chunks), err)
		}
	}
}
