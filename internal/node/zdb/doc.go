// Package zdb is a 0-db compatible key-value store: an engine (Store) that
// keeps namespaces of keys in append-only data files with an index beside
// them, and a Server that speaks 0-db's subset of the Redis protocol over
// one or more stores. The node runs one Store per HDD and provisions zdb
// workloads as namespaces; `zos zdb` runs a Server on its own.
//
// On disk, a namespace is a directory under the data root and one under the
// index root. Data files (zdb-data-NNNNN) hold every version of every entry,
// each with a header checksum and a payload checksum; index files
// (zdb-index-NNNNN, same number as their data file) hold one small record per
// data entry so that start-up does not read payloads. Files rotate at
// Config.MaxDataFileSize. At start-up the index is replayed; what the index
// misses is recovered by scanning the data files, and a torn tail (a crash in
// the middle of a write) is detected by its checksums and truncated.
package zdb
