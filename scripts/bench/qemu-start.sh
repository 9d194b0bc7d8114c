#!/bin/bash
# QEMU start-up under tcg: time from launching QEMU to the guest kernel's
# first console message, with anonymous guest memory (a bare boot) and with
# the memfd shared memory virtiofs needs (every container-mode VM). Needs
# QEMU and the kernel `make deps` fetched; skips otherwise. QEMU_BENCH_N
# sets the boots per case (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
kernel=$(ls .cache/kernel/linux-image-*/vmlinux-* 2>/dev/null | head -1 || true)
if ! command -v qemu-system-x86_64 >/dev/null || [ -z "$kernel" ]; then
	echo "qemu-start.sh: needs qemu-system-x86_64 and the kernel of make deps; skipped"
	exit 0
fi
n=${QEMU_BENCH_N:-3}
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
first() { # label, extra machine options, extra args...
	local label=$1 machine=$2 total=0
	shift 2
	for _ in $(seq "$n"); do
		: >"$dir/con.log"
		local start end
		start=$(date +%s%N)
		qemu-system-x86_64 -M "microvm,rtc=on$machine" -accel tcg -cpu max -smp 1 -m 256M "$@" -nodefaults -no-user-config \
			-nographic -no-reboot -chardev "file,id=console,path=$dir/con.log,append=on" -serial chardev:console \
			-kernel "$kernel" -append "console=ttyS0 panic=-1 tsc_early_khz=2600000" >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 2000); do [ -s "$dir/con.log" ] && break; sleep 0.005; done
		end=$(date +%s%N)
		kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null || true
		pid=
		total=$((total + (end - start) / 1000000))
	done
	echo "$label: QEMU launch to the kernel's first message, mean of $n: $((total / n)) ms"
}
first "anonymous memory (bare boot)" ""
first "memfd shared memory (virtiofs)" ",memory-backend=mem" -object memory-backend-memfd,id=mem,size=256M,share=on
