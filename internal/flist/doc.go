// Package flist reads, writes, builds and mounts flists in the v2 ".fl"
// format: a SQLite file describing a whole tree (inode, extra, block, tag and
// route tables) whose file content lives as content-addressed blocks in a
// store. A block's key is the blake2b-256 of its plain bytes; the plain bytes
// are snappy-compressed and sealed with AES-256-GCM under that key (nonce =
// key[:12]); the block is stored under the blake2b-256 of the ciphertext, so
// identical content dedupes across users and every fetched block is verified
// twice (id, then key).
//
// zosctl uses it to build, push, inspect and mount flists; the node's flist
// module mounts them lazily (read-only FUSE, or an overlay for workloads);
// zgrid's hub (package hub) serves them.
package flist
