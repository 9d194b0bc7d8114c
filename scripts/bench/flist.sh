#!/bin/bash
# Flist figures on a real Debian root: debootstrap --variant=minbase (about
# 35 s, 200 MB), then the flist benchmarks over it (build MB/s, dedup of a
# derived flist, time to the first `bash --version` from a cold lazy mount
# versus unpacking everything first). The busybox-tree figures come from
# `make bench` (go test -bench ./internal/flist). Needs root and debootstrap;
# skips otherwise. Set FLIST_BENCH_ROOT to reuse a root made before.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
	echo "flist.sh: needs root and debootstrap; skipped"
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=${FLIST_BENCH_ROOT:-}
if [ -z "$root" ]; then
	root=$work/rootfs
	start=$(date +%s)
	if ! debootstrap --variant=minbase bookworm "$root" >"$work/debootstrap.log" 2>&1; then
		echo "flist.sh: debootstrap failed (no mirror?); skipped"; tail -n 5 "$work/debootstrap.log"
		exit 0
	fi
	echo "debootstrap: $(( $(date +%s) - start )) s, $(du -sh "$root" | cut -f1)"
fi
FLIST_BENCH_SRC=$root FLIST_BENCH_CMD="/bin/bash --version" \
	go test -run '^$' -bench 'Build|Dedup|FirstRun' -benchtime 1x -count 1 ./internal/flist/
