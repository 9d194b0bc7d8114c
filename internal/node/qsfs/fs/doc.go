// Package fs is the qsfs file system: a POSIX tree served over FUSE whose
// file content lives in blocks on a Backend (the qsfs storage engine) and,
// while hot or not yet uploaded, in a local cache directory of bounded size.
// Metadata is checkpointed to the same backend, so a node with an empty
// cache and the same backend mounts the same tree. The qsfs workload manager
// mounts it; see README.md for the design.
package fs
