#!/bin/bash
# VM boot figures under tcg: QEMU launch to the entrypoint's marker on the
# serial console for a container-mode boot (vminit: modules, virtiofs root,
# switch root, entrypoint) versus a bare boot of the same kernel and
# initramfs (rdinit script printing the marker), and their ratio. Needs
# root, QEMU, virtiofsd and the kernel `make deps` fetched; skips otherwise.
# Then the same through the grid (BenchmarkVMs in internal/e2e): deploy to
# entrypoint versus the bare boot, and ten VMs deployed at once.
# VM_BENCH_N sets the boots per case (default 5).
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ] || ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /usr/lib/qemu/virtiofsd ]; then
	echo "vm.sh: needs root, qemu-system-x86_64 and /usr/lib/qemu/virtiofsd; skipped"
	exit 0
fi
n=${VM_BENCH_N:-5}
out=$(go test -run '^$' -bench '^BenchmarkBoot$' -benchtime "${n}x" -count 1 -timeout 20m ./internal/node/vm/)
echo "$out" | grep -E 'Benchmark|ok|SKIP|FAIL'
vminit=$(echo "$out" | awk '/BenchmarkBoot\/vminit/ {for (i=1;i<=NF;i++) if ($(i+1)=="ms/marker") print $i}')
bare=$(echo "$out" | awk '/BenchmarkBoot\/bare/ {for (i=1;i<=NF;i++) if ($(i+1)=="ms/marker") print $i}')
if [ -n "$vminit" ] && [ -n "$bare" ]; then
	awk -v v="$vminit" -v b="$bare" -v n="$n" 'BEGIN {printf "launch to marker over %d boots: vminit %.0f ms, bare %.0f ms, ratio %.2fx\n", n, v, b, v/b}'
fi

# Through the grid: zosctl deploy vm to the entrypoint's marker on a hosted
# node (one VM), and ten VMs deployed at once.
out=$(go test -run '^$' -bench '^BenchmarkVMs$' -benchtime 1x -count 1 -timeout 30m ./internal/e2e/)
echo "$out" | grep -E '^BenchmarkVMs|ok|SKIP|FAIL'
metric() { echo "$out" | awk -v u="$1" '/^BenchmarkVMs/ {for (i=1;i<=NF;i++) if ($(i+1)==u) print $i}'; }
deploy=$(metric s/deploy-to-entrypoint)
if [ -n "$deploy" ] && [ -n "$bare" ]; then
	awk -v d="$deploy" -v b="$bare" 'BEGIN {printf "deploy to entrypoint through the grid %.2f s, bare boot %.2f s, ratio %.2fx\n", d, b/1000, d*1000/b}'
	echo "ten VMs at once: all ok in $(metric s/ten-vms-ok) s, all entrypoints ran in $(metric s/ten-vms-entrypoint) s"
fi
