package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Object names on the backend: blocks are content-addressed, metadata
// checkpoints numbered by generation (zero-padded, so they sort).
const (
	blockPrefix = "qsfs-blk-"
	metaPrefix  = "qsfs-meta-"
	rootIno     = 1
	metaVersion = 1
)

// hash names a block by the sha256 of its content.
type hash [sha256.Size]byte

func (h hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText writes the hash in hex.
func (h hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads a hex hash.
func (h *hash) UnmarshalText(b []byte) error {
	if len(b) != 2*sha256.Size {
		return fmt.Errorf("block hash %q: want %d hex digits", b, 2*sha256.Size)
	}
	_, err := hex.Decode(h[:], b)
	return err
}

func blockName(h hash) string    { return blockPrefix + h.String() }
func metaName(gen uint64) string { return fmt.Sprintf("%s%016x", metaPrefix, gen) }

func parseMetaName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, metaPrefix)
	if !ok || len(s) != 16 {
		return 0, false
	}
	g, err := strconv.ParseUint(s, 16, 64)
	return g, err == nil
}

// inode is one file, directory, symlink or special file.
type inode struct {
	Ino    uint64 `json:"ino"`
	Mode   uint32 `json:"mode"` // st_mode: type and permission bits
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Size   uint64 `json:"size,omitempty"`
	Nlink  uint32 `json:"nlink"`
	Rdev   uint32 `json:"rdev,omitempty"`
	Atime  int64  `json:"atime"` // nanoseconds since the epoch
	Mtime  int64  `json:"mtime"`
	Ctime  int64  `json:"ctime"`
	Target string `json:"target,omitempty"` // symlink target
	// Blocks maps a block index to its content; a missing index is a hole.
	Blocks map[int64]hash `json:"blocks,omitempty"`
	// Entries maps a directory's names to inodes.
	Entries map[string]uint64 `json:"entries,omitempty"`
	// Parent is a directory's parent (for "..").
	Parent uint64 `json:"parent,omitempty"`

	open int // open file handles (not saved)
}

func (in *inode) isDir() bool { return in.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// tree is the whole metadata, as checkpointed.
type tree struct {
	Version   int               `json:"version"`
	Gen       uint64            `json:"gen"`
	BlockSize int               `json:"block_size"`
	NextIno   uint64            `json:"next_ino"`
	Inodes    map[uint64]*inode `json:"inodes"`
}

// encodeTree serializes the linked inodes of t (unlinked files still open
// are not part of a checkpoint) and returns the blocks they reference.
func encodeTree(t *tree) ([]byte, map[hash]struct{}, error) {
	out := tree{Version: metaVersion, Gen: t.Gen, BlockSize: t.BlockSize, NextIno: t.NextIno, Inodes: make(map[uint64]*inode, len(t.Inodes))}
	refs := map[hash]struct{}{}
	for ino, in := range t.Inodes {
		if in.Nlink == 0 && ino != rootIno {
			continue
		}
		out.Inodes[ino] = in
		for _, h := range in.Blocks {
			refs[h] = struct{}{}
		}
	}
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding metadata: %w", err)
	}
	return b, refs, nil
}

// decodeTree reads and checks a checkpoint: every entry names an inode,
// every directory's parent exists, block indexes are within the size.
func decodeTree(b []byte) (*tree, error) {
	var t tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decoding metadata: %w", err)
	}
	if t.Version != metaVersion {
		return nil, fmt.Errorf("metadata version %d, want %d", t.Version, metaVersion)
	}
	if t.BlockSize < 4096 || t.BlockSize > 64<<20 {
		return nil, fmt.Errorf("metadata block size %d out of range", t.BlockSize)
	}
	root := t.Inodes[rootIno]
	if root == nil || !root.isDir() {
		return nil, fmt.Errorf("metadata has no root directory")
	}
	for ino, in := range t.Inodes {
		if in == nil || in.Ino != ino {
			return nil, fmt.Errorf("metadata inode %d is malformed", ino)
		}
		if ino >= t.NextIno {
			return nil, fmt.Errorf("metadata inode %d is not below next inode %d", ino, t.NextIno)
		}
		if in.isDir() {
			if t.Inodes[in.Parent] == nil {
				return nil, fmt.Errorf("metadata directory %d has no parent %d", ino, in.Parent)
			}
			if in.Entries == nil {
				in.Entries = map[string]uint64{}
			}
		}
		for name, c := range in.Entries {
			if t.Inodes[c] == nil || name == "" || strings.Contains(name, "/") {
				return nil, fmt.Errorf("metadata entry %q of %d is malformed", name, ino)
			}
		}
		for idx := range in.Blocks {
			if idx < 0 || uint64(idx)*uint64(t.BlockSize) >= in.Size {
				return nil, fmt.Errorf("metadata inode %d has block %d beyond its size %d", ino, idx, in.Size)
			}
		}
	}
	return &t, nil
}
