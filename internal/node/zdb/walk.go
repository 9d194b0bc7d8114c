package zdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The slow queries: walking the index files (SCAN, RSCAN, KEYCUR) and the
// versions of a key in the data files (HISTORY, DATA RAW, KEYTIME).

// dataEntry is a decoded data file entry.
type dataEntry struct {
	meta
	key     []byte
	payload []byte
}

// readEntry reads the data entry at (file, off); called with mu held.
func (ns *namespace) readEntry(file, off uint32) (dataEntry, error) {
	seg := ns.segs[file]
	if seg == nil || off < fileHeaderSize || int64(off)+dataEntryFixed > seg.dataSize {
		return dataEntry{}, ErrInvalidCursor
	}
	hdr := make([]byte, dataEntryFixed+MaxKeyLen)
	n, err := seg.data.ReadAt(hdr, int64(off))
	if err != nil && !errors.Is(err, io.EOF) {
		return dataEntry{}, fmt.Errorf("reading data entry: %w", err)
	}
	m, klen, err := parseDataHeader(hdr[:n])
	if err != nil {
		return dataEntry{}, ErrInvalidCursor
	}
	e := dataEntry{meta: m, key: append([]byte(nil), hdr[dataEntryFixed:dataEntryFixed+klen]...)}
	e.payload = make([]byte, m.size)
	if _, err := seg.data.ReadAt(e.payload, int64(off)+dataEntryFixed+int64(klen)); err != nil {
		return dataEntry{}, fmt.Errorf("reading data payload: %w", err)
	}
	return e, nil
}

// history returns the entry of key at cursor (or the current one), with a
// cursor to its previous version (nil when none).
func (ns *namespace) history(key, cursor []byte) (prev []byte, e dataEntry, err error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.usable(); err != nil {
		return nil, dataEntry{}, err
	}
	var file, off uint32
	if cursor == nil {
		l, ok := ns.keys.get(key)
		if !ok {
			return nil, dataEntry{}, ErrKeyNotFound
		}
		file, off = l.file, l.off
	} else {
		var ok bool
		if file, off, ok = decodeLoc(cursor); !ok {
			return nil, dataEntry{}, ErrInvalidCursor
		}
	}
	e, err = ns.readEntry(file, off)
	if err != nil {
		return nil, dataEntry{}, err
	}
	if !bytes.Equal(e.key, key) {
		return nil, dataEntry{}, ErrInvalidCursor
	}
	if e.prevOff != 0 {
		prev = encodeLoc(e.prevFile, e.prevOff)
	}
	return prev, e, nil
}

// keyCursor returns the cursor of the index entry of key. The in-memory
// index does not keep index offsets (memory per key), so the index file is
// searched: KEYCUR is rare.
func (ns *namespace) keyCursor(key []byte) ([]byte, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.usable(); err != nil {
		return nil, err
	}
	l, ok := ns.keys.get(key)
	if !ok {
		return nil, ErrKeyNotFound
	}
	if err := ns.flushIndex(); err != nil {
		return nil, err
	}
	seg := ns.segs[l.file]
	if seg == nil {
		return nil, fmt.Errorf("index file %d missing", l.file)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(seg.index, fileHeaderSize, seg.indexSize-fileHeaderSize), 256<<10)
	buf := make([]byte, indexEntryFixed+MaxKeyLen)
	for pos := int64(fileHeaderSize); pos < seg.indexSize; {
		if _, err := io.ReadFull(br, buf[:indexEntryFixed]); err != nil {
			return nil, fmt.Errorf("reading index file %d: %w", l.file, err)
		}
		n := indexEntryFixed + int(buf[4])
		if _, err := io.ReadFull(br, buf[indexEntryFixed:n]); err != nil {
			return nil, fmt.Errorf("reading index file %d: %w", l.file, err)
		}
		if _, dataOff, _, err := parseIndexEntry(buf[:n]); err == nil && dataOff == l.off {
			return encodeLoc(l.file, uint32(pos)), nil
		}
		pos += int64(n)
	}
	return nil, fmt.Errorf("index entry of data offset %d not found in file %d", l.off, l.file)
}

// keyTime returns the timestamp of the current version of key.
func (ns *namespace) keyTime(key []byte) (uint32, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.usable(); err != nil {
		return 0, err
	}
	l, ok := ns.keys.get(key)
	if !ok {
		return 0, ErrKeyNotFound
	}
	seg := ns.segs[l.file]
	if seg == nil {
		return 0, fmt.Errorf("data file %d missing", l.file)
	}
	p := make([]byte, dataEntryFixed+len(key))
	if _, err := seg.data.ReadAt(p, int64(l.off)); err != nil {
		return 0, fmt.Errorf("reading data file %d: %w", l.file, err)
	}
	m, _, err := parseDataHeader(p)
	if err != nil {
		return 0, ErrCorrupted
	}
	return m.ts, nil
}

// ScanEntry is one key returned by a scan.
type ScanEntry struct {
	Key  []byte
	Size uint32
	TS   uint32
}

// readIndexAt reads the index entry at (file, off); called with mu held.
func (ns *namespace) readIndexAt(seg *segment, off int64, buf []byte) (meta, uint32, []byte, int64, error) {
	if off < fileHeaderSize || off+indexEntryFixed > seg.indexSize {
		return meta{}, 0, nil, 0, ErrInvalidCursor
	}
	n, err := seg.index.ReadAt(buf[:indexEntryFixed+MaxKeyLen], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return meta{}, 0, nil, 0, fmt.Errorf("reading index entry: %w", err)
	}
	m, dataOff, key, err := parseIndexEntry(buf[:n])
	if err != nil {
		return meta{}, 0, nil, 0, ErrInvalidCursor
	}
	return m, dataOff, key, off + indexEntryFixed + int64(len(key)), nil
}

// scan walks the index forward (or backward) from cursor and returns up to
// max live keys with the cursor of the last one.
func (ns *namespace) scan(cursor []byte, forward bool, max int) ([]ScanEntry, []byte, error) {
	ns.mu.Lock() // exclusive: pending index entries are written first
	defer ns.mu.Unlock()
	if err := ns.usable(); err != nil {
		return nil, nil, err
	}
	if err := ns.flushIndex(); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, indexEntryFixed+MaxKeyLen)
	si := 0 // position in ns.ids
	var pos int64
	if cursor == nil {
		if forward {
			pos = fileHeaderSize
		} else {
			si = len(ns.ids) - 1
			pos = ns.segs[ns.ids[si]].indexSize
		}
	} else {
		file, off, ok := decodeLoc(cursor)
		i, found := slices.BinarySearch(ns.ids, file)
		if !ok || !found {
			return nil, nil, ErrInvalidCursor
		}
		si = i
		_, _, _, end, err := ns.readIndexAt(ns.segs[file], int64(off), buf)
		if err != nil {
			return nil, nil, ErrInvalidCursor
		}
		if forward {
			pos = end
		} else {
			pos = int64(off)
		}
	}
	var out []ScanEntry
	var last []byte
	for len(out) < max && si >= 0 && si < len(ns.ids) {
		seg := ns.segs[ns.ids[si]]
		var entryOff int64
		if forward {
			if pos >= seg.indexSize {
				si, pos = si+1, fileHeaderSize
				continue
			}
			entryOff = pos
		} else {
			if pos <= fileHeaderSize {
				si--
				if si >= 0 {
					pos = ns.segs[ns.ids[si]].indexSize
				}
				continue
			}
			var k [1]byte
			if _, err := seg.index.ReadAt(k[:], pos-1); err != nil {
				return nil, nil, fmt.Errorf("reading index: %w", err)
			}
			entryOff = pos - indexEntryFixed - int64(k[0])
		}
		m, dataOff, key, end, err := ns.readIndexAt(seg, entryOff, buf)
		if err != nil {
			return nil, nil, err
		}
		if forward {
			pos = end
		} else {
			pos = entryOff
		}
		if m.flags&flagDeleted != 0 {
			continue
		}
		if l, ok := ns.keys.get(key); ok && l.file == seg.id && l.off == dataOff {
			out = append(out, ScanEntry{Key: append([]byte(nil), key...), Size: m.size, TS: m.ts})
			last = encodeLoc(seg.id, uint32(entryOff))
		}
	}
	if len(out) == 0 {
		return nil, nil, ErrNoMoreData
	}
	return out, last, nil
}
