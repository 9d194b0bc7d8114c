package flist

// Test helpers for the external tests of this directory (hub round trip).
var (
	BusyboxTree  = busyboxTree
	BuildDir     = buildDir
	MountMeta    = mountMeta
	CompareTrees = compareTrees
	RunChroot    = runChroot
)
