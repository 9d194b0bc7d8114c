// Package qsfs is the storage engine of the quantum-safe filesystem: it
// keeps named objects in 0-db backends on other nodes, chunked, compressed,
// encrypted (AES-256-GCM) and erasure-coded (Reed-Solomon) into shards
// spread over the workload's backend groups, with the metadata (what is
// where) encrypted and replicated over the meta backends so that a new
// Store given only the Config finds every object again. Repair rebuilds
// missing or corrupt shards. The qsfs filesystem stores its data through a
// Store; the qsfs workload manager builds the Config from the workload.
// See README.md for the design and the formats.
package qsfs
