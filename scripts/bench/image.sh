#!/bin/sh
# Image figures: the compressed initramfs size (full, and without QEMU,
# virtiofsd and the guest kernel), and boot-to-registered time under QEMU
# tcg (the image test logs "QEMU start to registered" for a first boot on
# blank disks and a second boot from the same disks). Needs make deps (the kernel cache).
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -o "$out/" ./cmd/zos ./cmd/zosctl ./cmd/vminit
"$out/zosctl" image build -o "$out/full" --zos "$out/zos" --kernel-cache .cache/kernel | grep -E '^(size|modules|helpers|guest):'
"$out/zosctl" image build -o "$out/small" --zos "$out/zos" --kernel-cache .cache/kernel --no-qemu | grep -E '^size:' | sed 's/^size:/size without QEMU (no VMs):/'
go test -count=1 -run 'TestImageBoot$' -v ./internal/image/ | grep -E 'QEMU start to registered|^(---|ok|FAIL)'
