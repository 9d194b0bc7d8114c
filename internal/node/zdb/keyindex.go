package zdb

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// loc is where the current version of a key lives (16 bytes: memory per
// key matters in user mode): its data entry, and what GET and SET need
// without touching the disk.
type loc struct {
	file uint32 // data (and index) file id
	off  uint32 // data entry offset
	size uint32 // payload length
	crc  uint32 // payload checksum
}

// keyIndex maps keys to their current location; one implementation per mode.
type keyIndex interface {
	get(key []byte) (loc, bool)
	put(key []byte, l loc)
	del(key []byte) (loc, bool)
	len() int
	sum() uint64 // total payload size
}

// userIndex keeps every key of a user-mode namespace in memory. It is an
// open-addressing hash table built for memory per key (the figure users of
// 0-db care about): 8-byte slots (hash tag + entry number), 24-byte entries
// in fixed pages, keys packed in an arena of 64 KiB chunks, no per-key
// allocation. Deleted keys leave garbage in the arena until the next rehash.
type userIndex struct {
	seed    maphash.Seed
	slots   []uint64 // 0 empty, slotTomb deleted, else tag<<32 | entry+1
	pages   [][]uentry
	free    []uint32 // entry numbers to reuse
	arena   [][]byte
	live    int
	tombs   int
	entries uint32 // entry numbers handed out
}

type uentry struct {
	l   loc
	key uint64 // arena chunk<<16 | offset of a length byte followed by the key
}

const (
	slotTomb   = ^uint64(0)
	pageSize   = 1024
	arenaChunk = 64 << 10
)

func newUserIndex(hint int) *userIndex {
	n := 16
	for n*3/4 < hint {
		n *= 2
	}
	return &userIndex{seed: maphash.MakeSeed(), slots: make([]uint64, n)}
}

func (u *userIndex) entry(e uint32) *uentry { return &u.pages[e/pageSize][e%pageSize] }

func (u *userIndex) keyAt(ref uint64) []byte {
	c := u.arena[ref>>16]
	off := int(ref & 0xffff)
	return c[off+1 : off+1+int(c[off])]
}

func (u *userIndex) storeKey(key []byte) uint64 {
	last := len(u.arena) - 1
	if last < 0 || len(u.arena[last])+1+len(key) > arenaChunk {
		u.arena = append(u.arena, make([]byte, 0, arenaChunk))
		last++
	}
	c := u.arena[last]
	ref := uint64(last)<<16 | uint64(len(c))
	c = append(c, byte(len(key)))
	u.arena[last] = append(c, key...)
	return ref
}

// find returns the slot holding key, or where to insert it, and the hash
// of key.
func (u *userIndex) find(key []byte) (slot int, found bool, h uint64) {
	h = maphash.Bytes(u.seed, key)
	tag := h >> 32
	mask := uint64(len(u.slots) - 1)
	insert := -1
	for i := h & mask; ; i = (i + 1) & mask {
		s := u.slots[i]
		switch {
		case s == 0:
			if insert < 0 {
				insert = int(i)
			}
			return insert, false, h
		case s == slotTomb:
			if insert < 0 {
				insert = int(i)
			}
		case s>>32 == tag:
			if bytes.Equal(u.keyAt(u.entry(uint32(s)-1).key), key) {
				return int(i), true, h
			}
		}
	}
}

func (u *userIndex) get(key []byte) (loc, bool) {
	i, ok, _ := u.find(key)
	if !ok {
		return loc{}, false
	}
	return u.entry(uint32(u.slots[i]) - 1).l, true
}

func (u *userIndex) put(key []byte, l loc) {
	i, ok, h := u.find(key)
	if ok {
		u.entry(uint32(u.slots[i]) - 1).l = l
		return
	}
	if (u.live+u.tombs+1)*4 > len(u.slots)*3 {
		n := len(u.slots)
		if (u.live+1)*8 > n*3 { // more than 3/8 live: grow, else clean tombstones
			n *= 2
		}
		u.rehash(n)
		i, _, _ = u.find(key)
	}
	var e uint32
	if n := len(u.free); n > 0 {
		e, u.free = u.free[n-1], u.free[:n-1]
	} else {
		e = u.entries
		u.entries++
		if int(e/pageSize) == len(u.pages) {
			u.pages = append(u.pages, make([]uentry, pageSize))
		}
	}
	*u.entry(e) = uentry{l: l, key: u.storeKey(key)}
	if u.slots[i] == slotTomb {
		u.tombs--
	}
	u.slots[i] = (h>>32)<<32 | uint64(e+1)
	u.live++
}

func (u *userIndex) del(key []byte) (loc, bool) {
	i, ok, _ := u.find(key)
	if !ok {
		return loc{}, false
	}
	e := uint32(u.slots[i]) - 1
	l := u.entry(e).l
	u.slots[i] = slotTomb
	u.tombs++
	u.live--
	u.free = append(u.free, e)
	return l, true
}

// rehash rebuilds the slots with n of them and packs the arena.
func (u *userIndex) rehash(n int) {
	old, oldArena := u.slots, u.arena
	u.slots, u.arena, u.tombs = make([]uint64, n), nil, 0
	mask := uint64(n - 1)
	for _, s := range old {
		if s == 0 || s == slotTomb {
			continue
		}
		ent := u.entry(uint32(s) - 1)
		c := oldArena[ent.key>>16]
		off := int(ent.key & 0xffff)
		key := c[off+1 : off+1+int(c[off])]
		ent.key = u.storeKey(key)
		h := maphash.Bytes(u.seed, key)
		i := h & mask
		for u.slots[i] != 0 {
			i = (i + 1) & mask
		}
		u.slots[i] = (h>>32)<<32 | (s & 0xffffffff)
	}
}

func (u *userIndex) len() int { return u.live }

func (u *userIndex) sum() uint64 {
	var n uint64
	for _, s := range u.slots {
		if s != 0 && s != slotTomb {
			n += uint64(u.entry(uint32(s) - 1).l.size)
		}
	}
	return n
}

// seqIndex keeps one location per sequential id; a deleted id keeps its slot
// (ids are never reused).
type seqIndex struct {
	locs []loc
	live int
}

const seqDeleted = ^uint32(0) // size sentinel of a deleted slot

func seqID(key []byte) (uint32, bool) {
	if len(key) != 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(key), true
}

func seqKey(id uint32) []byte { return binary.LittleEndian.AppendUint32(nil, id) }

func (s *seqIndex) next() uint32 { return uint32(len(s.locs)) }

func (s *seqIndex) get(key []byte) (loc, bool) {
	id, ok := seqID(key)
	if !ok || int64(id) >= int64(len(s.locs)) || s.locs[id].size == seqDeleted {
		return loc{}, false
	}
	return s.locs[id], true
}

func (s *seqIndex) put(key []byte, l loc) {
	id, ok := seqID(key)
	if !ok {
		return
	}
	for int64(len(s.locs)) <= int64(id) {
		s.locs = append(s.locs, loc{size: seqDeleted})
	}
	if s.locs[id].size == seqDeleted {
		s.live++
	}
	s.locs[id] = l
}

func (s *seqIndex) del(key []byte) (loc, bool) {
	l, ok := s.get(key)
	if !ok {
		// A tombstone for an id never seen still reserves the id.
		if id, valid := seqID(key); valid {
			for int64(len(s.locs)) <= int64(id) {
				s.locs = append(s.locs, loc{size: seqDeleted})
			}
		}
		return loc{}, false
	}
	id, _ := seqID(key)
	s.locs[id] = loc{size: seqDeleted}
	s.live--
	return l, true
}

func (s *seqIndex) len() int { return s.live }
func (s *seqIndex) sum() uint64 {
	var n uint64
	for _, l := range s.locs {
		if l.size != seqDeleted {
			n += uint64(l.size)
		}
	}
	return n
}
