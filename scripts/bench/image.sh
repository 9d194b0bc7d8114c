#!/bin/sh
# Image figures: the compressed initramfs size (full, and without QEMU,
# virtiofsd and the guest kernel), and boot-to-registered time under QEMU
# tcg (the image test logs "QEMU start to registered" for a first boot on
# blank disks and a second boot from the same disks), with a boot profile
# from each console (ZOS_CONSOLE_LOG=1): the kernel's uptime when init
# started, the module loading time, and init's steps up to registration.
# RUNS=N repeats the boot test (tcg times are noisy on a shared host: take
# medians); the load average is printed with each run.
# Needs make deps (the kernel cache).
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -o "$out/" ./cmd/zos ./cmd/zosctl ./cmd/vminit
"$out/zosctl" image build -o "$out/full" --zos "$out/zos" --kernel-cache .cache/kernel | grep -E '^(size|modules|helpers|guest):'
"$out/zosctl" image build -o "$out/small" --zos "$out/zos" --kernel-cache .cache/kernel --no-qemu | grep -E '^size:' | sed 's/^size:/size without QEMU (no VMs):/'
i=0
while [ "$i" -lt "${RUNS:-1}" ]; do
	i=$((i + 1))
	echo "run $i, load: $(cut -d' ' -f1-3 /proc/loadavg)"
	ZOS_CONSOLE_LOG=1 go test -count=1 -run 'TestImageBoot$' -v ./internal/image/ >"$out/boot.log" 2>&1 || { cat "$out/boot.log"; exit 1; }
	grep -E 'QEMU start to registered|^(---|ok|FAIL)' "$out/boot.log"
	# Per console (second boot first, as the test prints them): init's
	# steps in seconds since init started; the kernel's uptime at init
	# is its power-down uptime less init's run time.
	awk '
	function secs(s,   a) { split(substr(s, index(s, "T") + 1, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
	/msg=boot_config/ { t0 = secs($0); printf "boot:"; next }
	t0 && /msg=(modules_loaded|network_up|node_started|node_registered|halting)/ {
		match($0, /msg=[a-z_]+/); m = substr($0, RSTART + 4, RLENGTH - 4)
		if (m == "halting") { th = secs($0); next }
		printf " %s +%.2fs", m, secs($0) - t0
	}
	/reboot: Power down/ && t0 { match($0, /[0-9]+[.][0-9]+]/); up = substr($0, RSTART, RLENGTH - 1)
		printf " | kernel uptime at init %.2fs\n", up - (th - t0); t0 = 0 }
	' "$out/boot.log"
done
