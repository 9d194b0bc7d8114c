package zdb

import (
	"errors"
	"fmt"
	"time"
)

// Mode is how a namespace assigns keys.
type Mode string

// Modes of 0-db.
const (
	// ModeUser stores keys chosen by the client; all keys are kept in memory.
	ModeUser Mode = "user"
	// ModeSeq assigns 4-byte little-endian sequential keys on SET with an
	// empty key; memory holds one small record per key.
	ModeSeq Mode = "seq"
)

// ParseMode accepts the names used by 0-db and by the node.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "user", "userkey", "":
		return ModeUser, nil
	case "seq", "sequential":
		return ModeSeq, nil
	}
	return "", fmt.Errorf("unknown mode %q (want user or seq)", s)
}

// SyncMode says when written entries are forced to disk.
type SyncMode string

// Sync modes.
const (
	// SyncAlways acknowledges a write only once it is fsynced.
	SyncAlways SyncMode = "always"
	// SyncInterval fsyncs in the background every Config.SyncInterval.
	SyncInterval SyncMode = "interval"
)

// Limits of 0-db kept by this implementation.
const (
	MaxKeyLen       = 255     // bytes of a key
	MaxValueLen     = 8 << 20 // bytes of a value
	MaxNamespaceLen = 128     // bytes of a namespace name
	MaxMGetKeys     = 1023
)

// Config of a Store.
type Config struct {
	DataDir  string
	IndexDir string
	// Mode of the default namespace and of namespaces created without one.
	Mode Mode
	Sync SyncMode
	// SyncInterval is the period of background fsync in SyncInterval mode.
	SyncInterval time.Duration
	// MaxDataFileSize is the size at which data and index files rotate.
	MaxDataFileSize int64
	// Now is the clock (tests inject one); nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = ModeUser
	}
	if c.Sync == "" {
		c.Sync = SyncInterval
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = time.Second
	}
	if c.MaxDataFileSize <= 0 {
		c.MaxDataFileSize = 256 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	c.setDefaults()
	if c.DataDir == "" || c.IndexDir == "" {
		return errors.New("data and index directories are required")
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Sync != SyncAlways && c.Sync != SyncInterval {
		return fmt.Errorf("unknown sync mode %q (want always or interval)", c.Sync)
	}
	if c.MaxDataFileSize < 4096 {
		return fmt.Errorf("max data file size %d too small", c.MaxDataFileSize)
	}
	return nil
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Admin is the admin password; empty disables admin commands.
	Admin string
	// Protect makes the default namespace read-only unless admin.
	Protect bool
	// MaxClients bounds concurrent connections; 0 means 10000.
	MaxClients int
	// WriteTimeout closes a connection whose client does not read its
	// replies for that long; 0 means one minute.
	WriteTimeout time.Duration
}
