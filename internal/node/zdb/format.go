package zdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On-disk layout (little endian throughout).
//
// File header, 16 bytes, at the start of data and index files:
//
//	magic[4] "ZDBD" or "ZDBI", version u16, mode u8, reserved u8,
//	file id u32, created (unix seconds) u32
//
// Data entry, 26 bytes + key + payload:
//
//	header crc u32 (CRC-32C of the 22 following header bytes and the key),
//	key length u8, flags u8, payload length u32, payload crc u32,
//	timestamp u32, previous version file id u32, previous version offset u32
//
// Index entry, 31 bytes + key, one per data entry, in the same order:
//
//	crc u32 (CRC-32C of the rest of the entry), key length u8, flags u8,
//	data offset u32, payload length u32, payload crc u32, timestamp u32,
//	previous file u32, previous offset u32, key, key length u8 (trailer, so
//	that the file can be walked backwards)
//
// A previous offset of 0 means no previous version.
const (
	fileHeaderSize  = 16
	dataEntryFixed  = 26
	indexEntryFixed = 31
	formatVersion   = 1

	flagDeleted = 1
)

var (
	dataMagic  = [4]byte{'Z', 'D', 'B', 'D'}
	indexMagic = [4]byte{'Z', 'D', 'B', 'I'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

type fileHeader struct {
	magic   [4]byte
	mode    Mode
	id      uint32
	created uint32
}

func modeByte(m Mode) byte {
	if m == ModeSeq {
		return 1
	}
	return 0
}

func appendFileHeader(b []byte, h fileHeader) []byte {
	b = append(b, h.magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = append(b, modeByte(h.mode), 0)
	b = binary.LittleEndian.AppendUint32(b, h.id)
	b = binary.LittleEndian.AppendUint32(b, h.created)
	return b
}

func parseFileHeader(p []byte, magic [4]byte) (fileHeader, error) {
	if len(p) < fileHeaderSize {
		return fileHeader{}, errors.New("short file header")
	}
	if [4]byte(p[0:4]) != magic {
		return fileHeader{}, fmt.Errorf("bad magic %q", p[0:4])
	}
	if v := binary.LittleEndian.Uint16(p[4:6]); v != formatVersion {
		return fileHeader{}, fmt.Errorf("unsupported format version %d", v)
	}
	h := fileHeader{magic: magic, mode: ModeUser,
		id: binary.LittleEndian.Uint32(p[8:12]), created: binary.LittleEndian.Uint32(p[12:16])}
	if p[6] == 1 {
		h.mode = ModeSeq
	}
	return h, nil
}

// meta is what data and index entries share.
type meta struct {
	flags    uint8
	size     uint32 // payload length
	crc      uint32 // payload checksum
	ts       uint32
	prevFile uint32
	prevOff  uint32
}

// appendMeta appends the five words both entry kinds store in this order:
// payload length, payload crc, timestamp, previous file, previous offset.
func appendMeta(b []byte, m meta) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.size)
	b = binary.LittleEndian.AppendUint32(b, m.crc)
	b = binary.LittleEndian.AppendUint32(b, m.ts)
	b = binary.LittleEndian.AppendUint32(b, m.prevFile)
	return binary.LittleEndian.AppendUint32(b, m.prevOff)
}

// parseMeta decodes what appendMeta wrote (w holds its 20 bytes) and the
// flags byte.
func parseMeta(flags byte, w []byte) meta {
	return meta{
		flags:    flags,
		size:     binary.LittleEndian.Uint32(w[0:4]),
		crc:      binary.LittleEndian.Uint32(w[4:8]),
		ts:       binary.LittleEndian.Uint32(w[8:12]),
		prevFile: binary.LittleEndian.Uint32(w[12:16]),
		prevOff:  binary.LittleEndian.Uint32(w[16:20]),
	}
}

func appendDataEntry(b []byte, m meta, key, payload []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(len(key)), m.flags)
	b = appendMeta(b, m)
	b = append(b, key...)
	binary.LittleEndian.PutUint32(b[start:], checksum(b[start+4:]))
	return append(b, payload...)
}

// parseDataHeader decodes the fixed part of a data entry; p must hold the
// fixed part and the key. It returns the key length.
func parseDataHeader(p []byte) (meta, int, error) {
	if len(p) < dataEntryFixed {
		return meta{}, 0, errors.New("short data entry header")
	}
	klen := int(p[4])
	if len(p) < dataEntryFixed+klen {
		return meta{}, 0, errors.New("short data entry key")
	}
	if checksum(p[4:dataEntryFixed+klen]) != binary.LittleEndian.Uint32(p[0:4]) {
		return meta{}, 0, errors.New("data entry header checksum mismatch")
	}
	m := parseMeta(p[5], p[6:26])
	if m.size > MaxValueLen {
		return meta{}, 0, fmt.Errorf("payload length %d over limit", m.size)
	}
	return m, klen, nil
}

func appendIndexEntry(b []byte, m meta, dataOff uint32, key []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(len(key)), m.flags)
	b = binary.LittleEndian.AppendUint32(b, dataOff)
	b = appendMeta(b, m)
	b = append(b, key...)
	b = append(b, byte(len(key)))
	binary.LittleEndian.PutUint32(b[start:], checksum(b[start+4:]))
	return b
}

// parseIndexEntry decodes a whole index entry from p, which must hold it.
func parseIndexEntry(p []byte) (m meta, dataOff uint32, key []byte, err error) {
	if len(p) < indexEntryFixed {
		return meta{}, 0, nil, errors.New("short index entry")
	}
	klen := int(p[4])
	n := indexEntryFixed + klen
	if len(p) < n {
		return meta{}, 0, nil, errors.New("short index entry key")
	}
	if checksum(p[4:n]) != binary.LittleEndian.Uint32(p[0:4]) || p[n-1] != byte(klen) {
		return meta{}, 0, nil, errors.New("index entry checksum mismatch")
	}
	m = parseMeta(p[5], p[10:30])
	return m, binary.LittleEndian.Uint32(p[6:10]), p[30 : 30+klen], nil
}

// cursor is an 8-byte location (file id, offset) handed to clients by SCAN,
// KEYCUR and HISTORY.
func encodeLoc(file, off uint32) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, file)
	binary.LittleEndian.PutUint32(b[4:], off)
	return b
}

func decodeLoc(b []byte) (file, off uint32, ok bool) {
	if len(b) != 8 {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), true
}
