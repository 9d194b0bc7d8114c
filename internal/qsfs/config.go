package qsfs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/zdbclient"
)

// Compression algorithms.
const (
	CompressionSnappy = "snappy"
	CompressionZstd   = "zstd"
	CompressionNone   = "none"
)

// DefaultChunkSize is the size objects are cut in before coding.
const DefaultChunkSize = 4 << 20

// maxShardValue is the largest value a 0-db backend takes (8 MiB).
const maxShardValue = 8 << 20

// maxChunkSize bounds ChunkSize, and what a decoder accepts.
const maxChunkSize = 32 << 20

// maxChunks bounds the chunks of one object, so that its metadata record
// (at most 128 bytes a chunk and 240 a shard) fits a 0-db value: 5400
// chunks of 4 MiB with 6 shards.
func maxChunks(total int) int { return (maxShardValue - 4096) / (128 + 240*total) }

// Backend is one 0-db namespace.
type Backend struct {
	Address   string // host:port
	Namespace string
	Password  string
}

// ID names the backend in metadata: address/namespace.
func (b Backend) ID() string { return b.Address + "/" + b.Namespace }

// Config of a Store.
type Config struct {
	MinimalShards   int // shards any of which rebuild a chunk
	ExpectedShards  int // shards written per chunk
	RedundantGroups int // whole groups that may be lost
	RedundantNodes  int // single backends that may be lost
	DataKey         []byte
	Compression     string // snappy (default), zstd or none
	Groups          [][]Backend
	Meta            []Backend
	MetaPrefix      string
	MetaKey         []byte
	// ChunkSize is the plain size of a chunk; DefaultChunkSize when 0.
	ChunkSize int
	// Timeout bounds one call to a backend; 10 s when 0.
	Timeout time.Duration
	// Dialer opens the connections to the backends: the backends are
	// addresses a tenant named, so the node passes its egress policy's
	// dialer (internal/egress Policy.Dialer). Nil: a plain dialer.
	Dialer zdbclient.Dialer
	// Quiet leaves what the backends answered out of errors, for errors
	// a tenant reads.
	Quiet bool
}

func (c *Config) defaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Compression == "" {
		c.Compression = CompressionSnappy
	}
}

// Validate checks the config, including that the placement it asks for is
// possible over its groups.
func (c Config) Validate() error {
	c.defaults()
	var errs []error
	if c.MinimalShards < 1 {
		errs = append(errs, fmt.Errorf("minimal_shards: must be at least 1, got %d", c.MinimalShards))
	}
	if c.ExpectedShards <= c.MinimalShards {
		errs = append(errs, fmt.Errorf("expected_shards: must be more than minimal_shards %d, got %d", c.MinimalShards, c.ExpectedShards))
	}
	if c.ExpectedShards > 255 {
		errs = append(errs, fmt.Errorf("expected_shards: at most 255, got %d", c.ExpectedShards))
	}
	if c.RedundantGroups < 0 || c.RedundantNodes < 0 {
		errs = append(errs, errors.New("redundant_groups and redundant_nodes: must not be negative"))
	}
	if len(c.DataKey) != 32 {
		errs = append(errs, fmt.Errorf("encryption key: must be 32 bytes, got %d", len(c.DataKey)))
	}
	if len(c.MetaKey) != 32 {
		errs = append(errs, fmt.Errorf("meta encryption key: must be 32 bytes, got %d", len(c.MetaKey)))
	}
	switch c.Compression {
	case CompressionSnappy, CompressionZstd, CompressionNone:
	default:
		errs = append(errs, fmt.Errorf("compression: unknown algorithm %q (want snappy, zstd or none)", c.Compression))
	}
	if c.ChunkSize < 4<<10 || c.ChunkSize > maxChunkSize {
		errs = append(errs, fmt.Errorf("chunk size: must be between 4 KiB and 32 MiB, got %d", c.ChunkSize))
	}
	if len(c.MetaPrefix) > 64 {
		errs = append(errs, fmt.Errorf("meta prefix: at most 64 bytes, got %d", len(c.MetaPrefix)))
	}
	if len(c.Meta) == 0 {
		errs = append(errs, errors.New("meta backends: at least one is needed"))
	}
	if len(c.Groups) == 0 {
		errs = append(errs, errors.New("groups: at least one is needed"))
	}
	seen := map[string]bool{}
	check := func(where string, b Backend) {
		switch {
		case b.Address == "":
			errs = append(errs, fmt.Errorf("%s: address is empty", where))
		case seen[b.ID()]:
			errs = append(errs, fmt.Errorf("%s: %s is listed twice", where, b.ID()))
		}
		seen[b.ID()] = true
	}
	for i, g := range c.Groups {
		if len(g) == 0 {
			errs = append(errs, fmt.Errorf("groups[%d]: no backends", i))
		}
		for j, b := range g {
			check(fmt.Sprintf("groups[%d].backends[%d]", i, j), b)
		}
	}
	for i, b := range c.Meta {
		check(fmt.Sprintf("meta.backends[%d]", i), b)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Shard size: the encrypted chunk (compression may grow it a little)
	// over minimal shards must fit a 0-db value.
	if worst := (c.ChunkSize+c.ChunkSize/16+4096)/c.MinimalShards + shardHeaderLen; worst > maxShardValue {
		return fmt.Errorf("chunk size %d over %d minimal shards makes shards of up to %d bytes, more than a 0-db value (%d)",
			c.ChunkSize, c.MinimalShards, worst, maxShardValue)
	}
	var all []placeBackend
	for gi, g := range c.Groups {
		for range g {
			all = append(all, placeBackend{idx: len(all), group: gi})
		}
	}
	if _, err := place(all, c.ExpectedShards, c.MinimalShards, c.RedundantGroups, c.RedundantNodes, 0); err != nil {
		return fmt.Errorf("placement impossible with %d backends in %d groups: %w", len(all), len(c.Groups), err)
	}
	return nil
}

// ConfigFrom converts a qsfs workload's config. The meta type must be zdb;
// the encryption algorithms AES (the original's name) or empty.
func ConfigFrom(q gridtypes.QuantumSafeConfig) (Config, error) {
	if t := q.Meta.Type; t != "" && t != "zdb" {
		return Config{}, fmt.Errorf("meta.type: %q is not supported (want zdb)", t)
	}
	for _, a := range []struct{ where, alg string }{
		{"encryption.algorithm", q.Encryption.Algorithm},
		{"meta.config.encryption.algorithm", q.Meta.Config.Encryption.Algorithm},
	} {
		switch a.alg {
		case "", "AES", "aes", "AES-256-GCM":
		default:
			return Config{}, fmt.Errorf("%s: %q is not supported (want AES)", a.where, a.alg)
		}
	}
	conv := func(bs []gridtypes.ZdbBackend) []Backend {
		out := make([]Backend, len(bs))
		for i, b := range bs {
			out[i] = Backend{Address: b.Address, Namespace: b.Namespace, Password: b.Password}
		}
		return out
	}
	c := Config{
		MinimalShards:   int(q.MinimalShards),
		ExpectedShards:  int(q.ExpectedShards),
		RedundantGroups: int(q.RedundantGroups),
		RedundantNodes:  int(q.RedundantNodes),
		DataKey:         append([]byte(nil), q.Encryption.Key...),
		Compression:     q.Compression.Algorithm,
		Meta:            conv(q.Meta.Config.Backends),
		MetaPrefix:      q.Meta.Config.Prefix,
		MetaKey:         append([]byte(nil), q.Meta.Config.Encryption.Key...),
	}
	for _, g := range q.Groups {
		c.Groups = append(c.Groups, conv(g.Backends))
	}
	if c.Compression == "" {
		c.Compression = CompressionSnappy
	}
	c.Compression = strings.ToLower(c.Compression)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
