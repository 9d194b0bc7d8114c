package gridtypes

import (
	"fmt"
	"io"
)

// EncryptionKey is a hex-encoded key.
type EncryptionKey = Bytes

// Encryption of qsfs data or metadata.
type Encryption struct {
	Algorithm string        `json:"algorithm"`
	Key       EncryptionKey `json:"key"`
}

func (e *Encryption) challenge(c *challenger) {
	c.s(e.Algorithm)
	c.x(e.Key)
}

// ZdbBackend is a zdb namespace used by qsfs.
type ZdbBackend struct {
	Address   string `json:"address"`
	Namespace string `json:"namespace"`
	Password  string `json:"password"`
}

func (z *ZdbBackend) challenge(c *challenger) {
	c.s(z.Address)
	c.s(z.Namespace)
	c.s(z.Password)
}

// ZdbGroup is a group of backends.
type ZdbGroup struct {
	Backends []ZdbBackend `json:"backends"`
}

// QuantumSafeMetaConfig is the metadata store configuration.
type QuantumSafeMetaConfig struct {
	Prefix     string       `json:"prefix"`
	Encryption Encryption   `json:"encryption"`
	Backends   []ZdbBackend `json:"backends"`
}

// QuantumSafeMeta is the metadata store.
type QuantumSafeMeta struct {
	Type   string                `json:"type"`
	Config QuantumSafeMetaConfig `json:"config"`
}

// QuantumCompression configures compression.
type QuantumCompression struct {
	Algorithm string `json:"algorithm"`
}

// QuantumSafeConfig configures the erasure coding.
type QuantumSafeConfig struct {
	MinimalShards     uint32             `json:"minimal_shards"`
	ExpectedShards    uint32             `json:"expected_shards"`
	RedundantGroups   uint32             `json:"redundant_groups"`
	RedundantNodes    uint32             `json:"redundant_nodes"`
	MaxZDBDataDirSize uint32             `json:"max_zdb_data_dir_size"`
	Encryption        Encryption         `json:"encryption"`
	Meta              QuantumSafeMeta    `json:"meta"`
	Groups            []ZdbGroup         `json:"groups"`
	Compression       QuantumCompression `json:"compression"`
}

// QuantumSafeFS is erasure-coded storage over zdb backends.
type QuantumSafeFS struct {
	Cache  Unit              `json:"cache"`
	Config QuantumSafeConfig `json:"config"`
}

// QuantumSafeFSResult is the result data of a qsfs.
type QuantumSafeFSResult struct {
	Path            string `json:"path"`
	MetricsEndpoint string `json:"metrics_endpoint"`
}

// Challenge writes cache, then the configuration in the original's order.
func (q *QuantumSafeFS) Challenge(w io.Writer) error {
	c := &challenger{w: w}
	c.d(q.Cache)
	cfg := &q.Config
	c.d(uint64(cfg.MinimalShards))
	c.d(uint64(cfg.ExpectedShards))
	c.d(uint64(cfg.RedundantGroups))
	c.d(uint64(cfg.RedundantNodes))
	c.d(uint64(cfg.MaxZDBDataDirSize))
	cfg.Encryption.challenge(c)
	c.s(cfg.Meta.Type)
	c.s(cfg.Meta.Config.Prefix)
	cfg.Meta.Config.Encryption.challenge(c)
	for i := range cfg.Meta.Config.Backends {
		cfg.Meta.Config.Backends[i].challenge(c)
	}
	for _, g := range cfg.Groups {
		for i := range g.Backends {
			g.Backends[i].challenge(c)
		}
	}
	c.s(cfg.Compression.Algorithm)
	return c.err
}

// Valid checks the shard counts and keys.
func (q *QuantumSafeFS) Valid(*Deployment) error {
	cfg := &q.Config
	if cfg.MinimalShards > cfg.ExpectedShards {
		return fmt.Errorf("config.minimal_shards: %d is more than expected_shards %d", cfg.MinimalShards, cfg.ExpectedShards)
	}
	if len(cfg.Encryption.Key) != 32 {
		return fmt.Errorf("config.encryption.key: must be 32 bytes, got %d", len(cfg.Encryption.Key))
	}
	if len(cfg.Meta.Config.Encryption.Key) != 32 {
		return fmt.Errorf("config.meta.config.encryption.key: must be 32 bytes, got %d", len(cfg.Meta.Config.Encryption.Key))
	}
	return nil
}

// Capacity is {CRU 1, MRU 1 GiB, SRU cache}.
func (q *QuantumSafeFS) Capacity() (Capacity, error) {
	return Capacity{CRU: 1, MRU: 1 * Gigabyte, SRU: q.Cache}, nil
}
