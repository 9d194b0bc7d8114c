package zdb

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// listSegments returns the ids of the files "zdb-<kind>-NNNNN" in dir.
func listSegments(dir, kind string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	prefix := "zdb-" + kind + "-"
	var ids []uint32
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), prefix), 10, 32)
		if err != nil || n == 0 {
			continue
		}
		ids = append(ids, uint32(n))
	}
	slices.Sort(ids)
	return ids, nil
}

// createNamespace makes a new namespace on disk.
func createNamespace(cfg *Config, log *slog.Logger, name string, st nsSettings) (*namespace, error) {
	ns := newNamespace(cfg, log, name)
	for _, d := range []string{ns.dataDir, ns.indexDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating namespace directory: %w", err)
		}
	}
	ns.settings = st
	if err := ns.saveSettings(); err != nil {
		return nil, err
	}
	ns.newKeyIndex(0)
	if err := ns.createSegment(1); err != nil {
		return nil, err
	}
	return ns, nil
}

// loadNamespace opens an existing namespace: it replays the index files and
// recovers from the data files whatever the index misses.
func loadNamespace(cfg *Config, log *slog.Logger, name string) (*namespace, error) {
	ns := newNamespace(cfg, log, name)
	ns.settings = nsSettings{Public: true, Mode: cfg.Mode}
	b, err := os.ReadFile(filepath.Join(ns.indexDir, settingsFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &ns.settings); err != nil {
			return nil, fmt.Errorf("reading settings of %s: %w", name, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		for _, d := range []string{ns.dataDir, ns.indexDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, fmt.Errorf("creating namespace directory: %w", err)
			}
		}
		if err := ns.saveSettings(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("reading settings of %s: %w", name, err)
	}
	if ns.settings.Mode, err = ParseMode(string(ns.settings.Mode)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(ns.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating namespace directory: %w", err)
	}
	ids, err := listSegments(ns.dataDir, "data")
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		ns.newKeyIndex(0)
		return ns, ns.createSegment(1)
	}
	if err := ns.recover(ids); err != nil {
		ns.closeFiles()
		return nil, err
	}
	return ns, nil
}

func (ns *namespace) recover(ids []uint32) error {
	// Open every data file and check its header.
	var indexBytes int64
	for i, id := range ids {
		f, err := os.OpenFile(filepath.Join(ns.dataDir, segName("data", id)), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("opening data file %d: %w", id, err)
		}
		seg := &segment{id: id, data: f}
		ns.segs[id] = seg
		ns.ids = append(ns.ids, id)
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("reading data file %d: %w", id, err)
		}
		seg.dataSize = st.Size()
		hdr := make([]byte, fileHeaderSize)
		n, _ := f.ReadAt(hdr, 0)
		if _, err := parseFileHeader(hdr[:n], dataMagic); err != nil {
			if i != len(ids)-1 || seg.dataSize > fileHeaderSize {
				return fmt.Errorf("data file %d: %w", id, err)
			}
			// Created but the header never made it to disk.
			h := appendFileHeader(nil, fileHeader{magic: dataMagic, mode: ns.settings.Mode, id: id, created: ns.now()})
			if _, err := f.WriteAt(h, 0); err != nil {
				return fmt.Errorf("rewriting data header %d: %w", id, err)
			}
			seg.dataSize = fileHeaderSize
		}
		if st, err := os.Stat(filepath.Join(ns.indexDir, segName("index", id))); err == nil {
			indexBytes += st.Size()
		}
	}
	ns.newKeyIndex(int(indexBytes / (indexEntryFixed + 16)))

	// The newest index entries may describe data that never reached the
	// disk (power loss with the index flushed first): drop them.
	if err := ns.verifyIndexTail(ns.segs[ids[len(ids)-1]]); err != nil {
		return err
	}
	// Replay index files while they are complete and cover their data file.
	stop, from := len(ids), int64(fileHeaderSize)
	for i, id := range ids {
		end, complete, err := ns.replayIndex(ns.segs[id])
		if err != nil {
			return err
		}
		if !complete || end < ns.segs[id].dataSize {
			if !complete || i < len(ids)-1 {
				ns.log.Warn("index_incomplete", "file", id, "indexed_data_bytes", end, "data_bytes", ns.segs[id].dataSize)
			}
			stop, from = i, end
			break
		}
	}
	// Scan the data the index misses, writing the index entries back.
	for i := stop; i < len(ids); i++ {
		seg := ns.segs[ids[i]]
		if i > stop {
			from = fileHeaderSize
			if err := ns.resetIndex(seg); err != nil {
				return err
			}
		}
		if err := ns.scanData(seg, from, i == len(ids)-1); err != nil {
			return err
		}
	}
	ns.cur = ns.segs[ids[len(ids)-1]]
	ns.dataSize = ns.keys.sum()
	// Index files without a data file are leftovers.
	if idx, err := listSegments(ns.indexDir, "index"); err == nil {
		for _, id := range idx {
			if ns.segs[id] == nil {
				os.Remove(filepath.Join(ns.indexDir, segName("index", id)))
			}
		}
	}
	return nil
}

// resetIndex creates an empty index file for seg, replacing any.
func (ns *namespace) resetIndex(seg *segment) error {
	if seg.index != nil {
		seg.index.Close()
	}
	f, err := os.OpenFile(filepath.Join(ns.indexDir, segName("index", seg.id)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating index file %d: %w", seg.id, err)
	}
	h := appendFileHeader(nil, fileHeader{magic: indexMagic, mode: ns.settings.Mode, id: seg.id, created: ns.now()})
	if _, err := f.WriteAt(h, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing index header %d: %w", seg.id, err)
	}
	seg.index, seg.indexSize = f, fileHeaderSize
	return nil
}

// apply records one entry in the in-memory index during recovery; the data
// size is summed once at the end (one map probe per entry instead of two).
func (ns *namespace) apply(key []byte, m meta, l loc) {
	if ns.settings.Mode == ModeSeq && len(key) != 4 {
		return
	}
	if m.flags&flagDeleted != 0 {
		ns.keys.del(key)
		return
	}
	ns.keys.put(key, l)
}

// replayIndex loads the index file of seg. It returns the end of the data
// the index covers and whether the index file was whole; a damaged tail is
// truncated.
func (ns *namespace) replayIndex(seg *segment) (int64, bool, error) {
	f, err := os.OpenFile(filepath.Join(ns.indexDir, segName("index", seg.id)), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fileHeaderSize, false, ns.resetIndex(seg)
	}
	if err != nil {
		return 0, false, fmt.Errorf("opening index file %d: %w", seg.id, err)
	}
	seg.index = f
	st, err := f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("reading index file %d: %w", seg.id, err)
	}
	size := st.Size()
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	buf := make([]byte, indexEntryFixed+MaxKeyLen)
	if _, err := io.ReadFull(br, buf[:fileHeaderSize]); err != nil {
		return fileHeaderSize, false, ns.resetIndex(seg)
	}
	if h, err := parseFileHeader(buf[:fileHeaderSize], indexMagic); err != nil || h.id != seg.id {
		ns.log.Warn("index_header_invalid", "file", seg.id)
		return fileHeaderSize, false, ns.resetIndex(seg)
	}
	pos, dataEnd := int64(fileHeaderSize), int64(fileHeaderSize)
	for pos < size {
		ok := false
		if _, err := io.ReadFull(br, buf[:indexEntryFixed]); err == nil {
			n := indexEntryFixed + int(buf[4])
			if _, err := io.ReadFull(br, buf[indexEntryFixed:n]); err == nil {
				m, dataOff, key, err := parseIndexEntry(buf[:n])
				end := int64(dataOff) + dataEntryFixed + int64(len(key)) + int64(m.size)
				if err == nil && int64(dataOff) == dataEnd && end <= seg.dataSize {
					ns.apply(key, m, loc{file: seg.id, off: dataOff, size: m.size, crc: m.crc})
					pos += int64(n)
					dataEnd = end
					ok = true
				}
			}
		}
		if !ok {
			ns.log.Warn("index_tail_truncated", "file", seg.id, "offset", pos, "bytes", size-pos)
			if err := f.Truncate(pos); err != nil {
				return 0, false, fmt.Errorf("truncating index file %d: %w", seg.id, err)
			}
			seg.indexSize = pos
			return dataEnd, false, nil
		}
	}
	seg.indexSize = pos
	return dataEnd, true, nil
}

// scanData reads the data entries of seg from offset from, indexes them and
// truncates a torn tail.
func (ns *namespace) scanData(seg *segment, from int64, last bool) error {
	size := seg.dataSize
	br := bufio.NewReaderSize(io.NewSectionReader(seg.data, from, size-from), 1<<20)
	hdr := make([]byte, dataEntryFixed+MaxKeyLen)
	payload := make([]byte, 0, 64<<10)
	var ibuf []byte
	flushIndex := func() error {
		if len(ibuf) == 0 {
			return nil
		}
		if _, err := seg.index.WriteAt(ibuf, seg.indexSize); err != nil {
			return fmt.Errorf("rebuilding index file %d: %w", seg.id, err)
		}
		seg.indexSize += int64(len(ibuf))
		ibuf = ibuf[:0]
		return nil
	}
	pos := from
	recovered := 0
	for pos < size {
		var m meta
		var klen int
		valid := false
		var entryLen int64
		if _, err := io.ReadFull(br, hdr[:dataEntryFixed]); err == nil {
			klen = int(hdr[4])
			if _, err := io.ReadFull(br, hdr[dataEntryFixed:dataEntryFixed+klen]); err == nil {
				var perr error
				m, _, perr = parseDataHeader(hdr[:dataEntryFixed+klen])
				entryLen = dataEntryFixed + int64(klen) + int64(m.size)
				if perr == nil && pos+entryLen <= size {
					payload = slices.Grow(payload[:0], int(m.size))[:m.size]
					if _, err := io.ReadFull(br, payload); err == nil {
						valid = checksum(payload) == m.crc
						if !valid && pos+entryLen < size {
							// Damaged in the middle, not torn: keep it,
							// CHECK reports it.
							ns.log.Warn("data_entry_corrupt", "file", seg.id, "offset", pos)
							valid = true
						}
					}
				}
			}
		}
		if !valid {
			if !last {
				ns.log.Warn("data_file_damaged", "file", seg.id, "offset", pos, "bytes", size-pos)
			} else {
				ns.log.Warn("torn_tail_truncated", "file", seg.id, "offset", pos, "bytes", size-pos)
			}
			if err := seg.data.Truncate(pos); err != nil {
				return fmt.Errorf("truncating data file %d: %w", seg.id, err)
			}
			seg.dataSize = pos
			break
		}
		key := hdr[dataEntryFixed : dataEntryFixed+klen]
		l := loc{file: seg.id, off: uint32(pos), size: m.size, crc: m.crc}
		ibuf = appendIndexEntry(ibuf, m, uint32(pos), key)
		ns.apply(key, m, l)
		pos += entryLen
		recovered++
		if len(ibuf) > 1<<20 {
			if err := flushIndex(); err != nil {
				return err
			}
		}
	}
	if recovered > 0 {
		ns.log.Info("entries_recovered_from_data", "file", seg.id, "entries", recovered)
		ns.dirty[seg.id] = struct{}{}
	}
	return flushIndex()
}

// verifyIndexTail walks the index file of seg backwards and truncates the
// entries whose data entry is missing or fails its checksums, stopping at the
// first good one.
func (ns *namespace) verifyIndexTail(seg *segment) error {
	f, err := os.OpenFile(filepath.Join(ns.indexDir, segName("index", seg.id)), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening index file %d: %w", seg.id, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading index file %d: %w", seg.id, err)
	}
	size := st.Size()
	pos := size
	buf := make([]byte, indexEntryFixed+MaxKeyLen)
	for pos > fileHeaderSize {
		if _, err := f.ReadAt(buf[:1], pos-1); err != nil {
			break
		}
		start := pos - indexEntryFixed - int64(buf[0])
		if start < fileHeaderSize {
			break
		}
		n := int(pos - start)
		if _, err := f.ReadAt(buf[:n], start); err != nil {
			break
		}
		m, dataOff, key, err := parseIndexEntry(buf[:n])
		if err != nil {
			break // not an entry boundary: the forward replay handles it
		}
		if ns.dataEntryOK(seg, m, dataOff, key) {
			break
		}
		pos = start
	}
	if pos < size {
		ns.log.Warn("index_entries_without_data", "file", seg.id, "offset", pos, "bytes", size-pos)
		if err := f.Truncate(pos); err != nil {
			return fmt.Errorf("truncating index file %d: %w", seg.id, err)
		}
	}
	return nil
}

// dataEntryOK checks that the data entry an index entry points to is whole.
func (ns *namespace) dataEntryOK(seg *segment, m meta, off uint32, key []byte) bool {
	n := int64(dataEntryFixed + len(key) + int(m.size))
	if int64(off)+n > seg.dataSize {
		return false
	}
	p := make([]byte, n)
	if _, err := seg.data.ReadAt(p, int64(off)); err != nil {
		return false
	}
	dm, klen, err := parseDataHeader(p)
	return err == nil && klen == len(key) && bytes.Equal(p[dataEntryFixed:dataEntryFixed+klen], key) &&
		dm.size == m.size && checksum(p[dataEntryFixed+klen:]) == dm.crc
}
