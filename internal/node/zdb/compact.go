package zdb

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// CompactStats reports what Compact did.
type CompactStats struct {
	Namespaces  int
	Entries     int   // live entries kept
	BytesBefore int64 // data bytes before
	BytesAfter  int64 // data bytes after
}

// Compact rewrites every namespace of the store in cfg keeping only the
// current version of each live key (history and tombstones are dropped). It
// is offline: no server may use the directories meanwhile.
func Compact(cfg Config, log *slog.Logger) (CompactStats, error) {
	var st CompactStats
	s, err := Open(cfg, log)
	if err != nil {
		return st, err
	}
	defer s.Close()
	for _, ns := range s.list() {
		ns.mu.Lock()
		err := s.compactNamespace(ns, &st)
		ns.mu.Unlock()
		if err != nil {
			return st, fmt.Errorf("compacting %s: %w", ns.name, err)
		}
		st.Namespaces++
	}
	return st, nil
}

// compactNamespace is called with ns.mu held.
func (s *Store) compactNamespace(ns *namespace, st *CompactStats) error {
	tmp := newNamespace(&s.cfg, s.log, ns.name)
	tmp.dataDir = filepath.Join(s.cfg.DataDir, ".compact-"+ns.name)
	tmp.indexDir = filepath.Join(s.cfg.IndexDir, ".compact-"+ns.name)
	for _, d := range []string{tmp.dataDir, tmp.indexDir} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("cleaning %s: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	tmp.settings = ns.settings
	tmp.newKeyIndex(ns.keys.len())
	if err := tmp.saveSettings(); err != nil {
		return err
	}
	if err := tmp.createSegment(1); err != nil {
		return err
	}
	if err := ns.flushIndex(); err != nil {
		return err
	}
	buf := make([]byte, indexEntryFixed+MaxKeyLen)
	for _, id := range ns.ids {
		seg := ns.segs[id]
		st.BytesBefore += seg.dataSize
		br := bufio.NewReaderSize(io.NewSectionReader(seg.index, fileHeaderSize, seg.indexSize-fileHeaderSize), 1<<20)
		pos := int64(fileHeaderSize)
		for pos < seg.indexSize {
			if _, err := io.ReadFull(br, buf[:indexEntryFixed]); err != nil {
				return fmt.Errorf("reading index %d: %w", id, err)
			}
			n := indexEntryFixed + int(buf[4])
			if _, err := io.ReadFull(br, buf[indexEntryFixed:n]); err != nil {
				return fmt.Errorf("reading index %d: %w", id, err)
			}
			m, dataOff, key, err := parseIndexEntry(buf[:n])
			if err != nil {
				return fmt.Errorf("index %d offset %d: %w", id, pos, err)
			}
			l, live := ns.keys.get(key)
			if m.flags&flagDeleted == 0 && live && l.file == id && l.off == dataOff {
				e, err := ns.readEntry(l.file, l.off)
				if err != nil {
					return fmt.Errorf("reading entry: %w", err)
				}
				nl, err := tmp.append(key, meta{size: e.size, crc: e.crc, ts: e.ts}, e.payload)
				if err != nil {
					return err
				}
				tmp.keys.put(key, nl)
				st.Entries++
			}
			pos += int64(n)
		}
	}
	// In seq mode, keep the next id: a deleted last id stays as a tombstone.
	if sq, ok := ns.keys.(*seqIndex); ok && len(sq.locs) > 0 {
		last := uint32(len(sq.locs) - 1)
		if _, live := sq.get(seqKey(last)); !live {
			if _, err := tmp.append(seqKey(last), meta{flags: flagDeleted, ts: ns.now(), crc: checksum(nil)}, nil); err != nil {
				return err
			}
		}
	}
	if err := tmp.flushIndex(); err != nil {
		return err
	}
	for _, seg := range tmp.segs {
		st.BytesAfter += seg.dataSize
		if err := fdatasync(seg.data); err != nil {
			return fmt.Errorf("syncing: %w", err)
		}
		if err := fdatasync(seg.index); err != nil {
			return fmt.Errorf("syncing: %w", err)
		}
	}
	tmp.closeFiles()
	ns.closeFiles()
	for _, pair := range [][2]string{{ns.dataDir, tmp.dataDir}, {ns.indexDir, tmp.indexDir}} {
		old := pair[0] + ".old"
		if err := os.Rename(pair[0], old); err != nil {
			return fmt.Errorf("swapping directories: %w", err)
		}
		if err := os.Rename(pair[1], pair[0]); err != nil {
			return fmt.Errorf("swapping directories: %w", err)
		}
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("removing old files: %w", err)
		}
	}
	ns.gone = true
	s.log.Info("namespace_compacted", "namespace", ns.name, "entries", st.Entries)
	return nil
}
