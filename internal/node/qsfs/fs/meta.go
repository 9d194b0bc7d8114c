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
	jrnlPrefix  = "qsfs-jrnl-"
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
func jrnlName(gen uint64) string { return fmt.Sprintf("%s%016x", jrnlPrefix, gen) }

func parseGen(name, prefix string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, prefix)
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

// tree is the whole metadata.
type tree struct {
	Version   int
	Gen       uint64 // of the last record written or read
	BlockSize int
	NextIno   uint64
	Inodes    map[uint64]*inode
}

// within reports whether directory dir is ino or lies below it (a
// directory must not move below itself).
func (t *tree) within(dir *inode, ino uint64) bool {
	for p := dir; ; p = t.Inodes[p.Parent] {
		if p.Ino == ino {
			return true
		}
		if p.Ino == rootIno {
			return false
		}
	}
}

// record is a metadata object on the backend: a full checkpoint (Full:
// every linked inode) or a journal record (the inodes changed since the
// previous record, and those removed).
type record struct {
	Version   int               `json:"version"`
	Gen       uint64            `json:"gen"`
	Full      bool              `json:"full,omitempty"`
	BlockSize int               `json:"block_size"`
	NextIno   uint64            `json:"next_ino"`
	Inodes    map[uint64]*inode `json:"inodes"`
	Deleted   []uint64          `json:"deleted,omitempty"`
}

// encodeRecord serializes generation gen of t: all of it when full, else
// the inodes in dirty. Inodes no longer linked (unlinked files still open)
// are left out, as deleted. It returns the blocks the record names.
func encodeRecord(t *tree, gen uint64, full bool, dirty map[uint64]struct{}) ([]byte, map[hash]struct{}, error) {
	r := record{Version: metaVersion, Gen: gen, Full: full, BlockSize: t.BlockSize, NextIno: t.NextIno, Inodes: map[uint64]*inode{}}
	refs := map[hash]struct{}{}
	add := func(ino uint64) {
		in := t.Inodes[ino]
		if in == nil || (in.Nlink == 0 && ino != rootIno) {
			if !full {
				r.Deleted = append(r.Deleted, ino)
			}
			return
		}
		r.Inodes[ino] = in
		for _, h := range in.Blocks {
			refs[h] = struct{}{}
		}
	}
	if full {
		for ino := range t.Inodes {
			add(ino)
		}
	} else {
		for ino := range dirty {
			add(ino)
		}
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding metadata: %w", err)
	}
	return b, refs, nil
}

func decodeRecord(b []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding metadata: %w", err)
	}
	if r.Version != metaVersion {
		return nil, fmt.Errorf("metadata version %d, want %d", r.Version, metaVersion)
	}
	if r.BlockSize < 4096 || r.BlockSize > 64<<20 {
		return nil, fmt.Errorf("metadata block size %d out of range", r.BlockSize)
	}
	for ino, in := range r.Inodes {
		if in == nil || in.Ino != ino {
			return nil, fmt.Errorf("metadata inode %d is malformed", ino)
		}
	}
	return &r, nil
}

// decodeTree reads and checks a full checkpoint.
func decodeTree(b []byte) (*tree, error) {
	r, err := decodeRecord(b)
	if err != nil {
		return nil, err
	}
	if !r.Full {
		return nil, fmt.Errorf("metadata checkpoint %d is not a full one", r.Gen)
	}
	t := &tree{Version: r.Version, Gen: r.Gen, BlockSize: r.BlockSize, NextIno: r.NextIno, Inodes: r.Inodes}
	return t, t.check()
}

// apply lays journal record r, the next generation, over t.
func (t *tree) apply(r *record) error {
	if r.Full || r.Gen != t.Gen+1 || r.BlockSize != t.BlockSize {
		return fmt.Errorf("journal record %d does not follow generation %d", r.Gen, t.Gen)
	}
	for ino, in := range r.Inodes {
		t.Inodes[ino] = in
	}
	for _, ino := range r.Deleted {
		delete(t.Inodes, ino)
	}
	t.Gen, t.NextIno = r.Gen, r.NextIno
	return nil
}

// check validates a whole tree: every entry names an inode, every
// directory's parent exists, block indexes are within the size.
func (t *tree) check() error {
	root := t.Inodes[rootIno]
	if root == nil || !root.isDir() {
		return fmt.Errorf("metadata has no root directory")
	}
	for ino, in := range t.Inodes {
		if in == nil || in.Ino != ino {
			return fmt.Errorf("metadata inode %d is malformed", ino)
		}
		if ino >= t.NextIno {
			return fmt.Errorf("metadata inode %d is not below next inode %d", ino, t.NextIno)
		}
		if in.isDir() {
			if t.Inodes[in.Parent] == nil {
				return fmt.Errorf("metadata directory %d has no parent %d", ino, in.Parent)
			}
			if in.Entries == nil {
				in.Entries = map[string]uint64{}
			}
		}
		for name, c := range in.Entries {
			if t.Inodes[c] == nil || name == "" || strings.Contains(name, "/") {
				return fmt.Errorf("metadata entry %q of %d is malformed", name, ino)
			}
		}
		for idx := range in.Blocks {
			if idx < 0 || uint64(idx)*uint64(t.BlockSize) >= in.Size {
				return fmt.Errorf("metadata inode %d has block %d beyond its size %d", ino, idx, in.Size)
			}
		}
	}
	// Directories form a tree from the root: each is named once, by the
	// directory its parent field names (rename's cycle check relies on it).
	seen := map[uint64]bool{rootIno: true}
	todo := []uint64{rootIno}
	for len(todo) > 0 {
		d := t.Inodes[todo[len(todo)-1]]
		todo = todo[:len(todo)-1]
		for name, c := range d.Entries {
			in := t.Inodes[c]
			if !in.isDir() {
				continue
			}
			if seen[c] || in.Parent != d.Ino {
				return fmt.Errorf("metadata directory %d (%q in %d) is linked twice or names parent %d", c, name, d.Ino, in.Parent)
			}
			seen[c] = true
			todo = append(todo, c)
		}
	}
	return nil
}
