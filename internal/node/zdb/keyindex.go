package zdb

import "encoding/binary"

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

// userIndex keeps every key of a user-mode namespace in memory.
type userIndex struct{ m map[string]loc }

func newUserIndex(hint int) *userIndex { return &userIndex{m: make(map[string]loc, hint)} }

func (u *userIndex) get(key []byte) (loc, bool) { l, ok := u.m[string(key)]; return l, ok }
func (u *userIndex) put(key []byte, l loc)      { u.m[string(key)] = l }
func (u *userIndex) del(key []byte) (loc, bool) {
	l, ok := u.m[string(key)]
	if ok {
		delete(u.m, string(key))
	}
	return l, ok
}
func (u *userIndex) len() int { return len(u.m) }
func (u *userIndex) sum() uint64 {
	var n uint64
	for _, l := range u.m {
		n += uint64(l.size)
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
