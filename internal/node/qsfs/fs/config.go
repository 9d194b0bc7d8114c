package fs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backend stores named objects durably; the qsfs engine's *qsfs.Store is
// the production one.
type Backend interface {
	// Put stores data under name; it is durable on the backends' quorum
	// when Put returns nil.
	Put(ctx context.Context, name string, data []byte) error
	// Get returns the object; a missing one is an error for which
	// Config.IsNotFound is true.
	Get(ctx context.Context, name string) ([]byte, error)
	// Delete removes the object.
	Delete(ctx context.Context, name string) error
	// List returns the names starting with prefix.
	List(ctx context.Context, prefix string) ([]string, error)
}

// Config of a mount.
type Config struct {
	// CacheDir holds the cached blocks (the node's SSD pool).
	CacheDir string
	// CacheSize bounds the bytes of blocks kept in CacheDir; at least four
	// blocks.
	CacheSize int64
	// BlockSize is the size files are cut in for a new file system (1 MiB
	// when 0); an existing one keeps its own.
	BlockSize int
	// IsNotFound tells a backend's "no such object" error.
	IsNotFound func(error) bool
	// CheckpointInterval is how often changed metadata is checkpointed to
	// the backend without an fsync (5 s when 0).
	CheckpointInterval time.Duration
	// Uploaders is how many blocks are uploaded in the background at once
	// (2 when 0).
	Uploaders int
	// OpenBlocks bounds the blocks being written held in memory before
	// they are sealed into the cache (8 when 0).
	OpenBlocks int
	// OpTimeout bounds one backend call (60 s when 0).
	OpTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.BlockSize == 0 {
		c.BlockSize = 1 << 20
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 5 * time.Second
	}
	if c.Uploaders == 0 {
		c.Uploaders = 2
	}
	if c.OpenBlocks == 0 {
		c.OpenBlocks = 8
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 60 * time.Second
	}
}

// Validate checks the config (after defaults).
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.CacheDir == "":
		return errors.New("cache directory is empty")
	case c.IsNotFound == nil:
		return errors.New("IsNotFound is nil")
	case c.BlockSize < 4096 || c.BlockSize > 64<<20:
		return fmt.Errorf("block size %d out of range [4096, 64 MiB]", c.BlockSize)
	case c.CacheSize < 4*int64(c.BlockSize):
		return fmt.Errorf("cache size %d is below four blocks of %d", c.CacheSize, c.BlockSize)
	case c.Uploaders < 0 || c.OpenBlocks < 0:
		return errors.New("uploaders and open blocks must not be negative")
	}
	return nil
}
